/* Frame parser: Ethernet, ARP, IPv4 (fragments, options), TCP/UDP ports and flags, ICMP errors with
 * their quoted header. Every read is bounded by the captured length. Also the ARP frame builder. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "pkt.h"

#define ETH_HLEN_ 14

static uint16_t pkt_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t pkt_get32n(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint16_t pkt_get16n(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static enum pkt_err pkt_parse_arp(const uint8_t *a, uint32_t len, struct pkt *p)
{
	if (len < 28)
		return PKT_TRUNCATED;
	/* Ethernet hardware, IPv4 protocol, 6/4 address lengths. */
	if (pkt_get16(a) != 1 || pkt_get16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4)
		return PKT_BAD_ARP;
	p->arp_op = pkt_get16(a + 6);
	p->arp_sha = a + 8;
	p->arp_spa = pkt_get32n(a + 14);
	p->arp_tpa = pkt_get32n(a + 24);
	return PKT_OK;
}

/* The quoted header of an ICMP error: an IPv4 header and at least 8 bytes of its payload. */
static void pkt_parse_icmp_inner(const uint8_t *q, uint32_t len, struct pkt *p)
{
	uint32_t ihl;

	if (len < 20 || (q[0] >> 4) != 4)
		return;
	ihl = (uint32_t)(q[0] & 0x0f) * 4;
	if (ihl < 20 || len < ihl + 8)
		return;
	if (q[9] != IPPROTO_TCP && q[9] != IPPROTO_UDP)
		return;
	if (pkt_get16(q + 6) & 0x1fff)     /* a non-first fragment quotes no ports */
		return;
	p->have_inner = 1;
	p->in_proto = q[9];
	p->in_src = ipaddr_from_v4(pkt_get32n(q + 12));
	p->in_dst = ipaddr_from_v4(pkt_get32n(q + 16));
	p->in_sport = pkt_get16n(q + ihl);
	p->in_dport = pkt_get16n(q + ihl + 2);
}

static enum pkt_err pkt_parse_ipv4(const uint8_t *ip, uint32_t len, struct pkt *p)
{
	uint16_t fragw;
	const uint8_t *l4;
	uint32_t l4len;

	if (len < 20)
		return PKT_TRUNCATED;
	if ((ip[0] >> 4) != 4)
		return PKT_BAD_VERSION;
	p->ihl = (uint16_t)((ip[0] & 0x0f) * 4);
	if (p->ihl < 20)
		return PKT_BAD_IHL;
	if (len < p->ihl)
		return PKT_TRUNCATED;
	p->ip_len = pkt_get16(ip + 2);
	/* Frames may carry Ethernet padding past ip_len, never less than ip_len. */
	if (p->ip_len < p->ihl || p->ip_len > len)
		return PKT_BAD_LEN;
	p->proto = ip[9];
	p->hop_limit = ip[8];
	p->src = ipaddr_from_v4(pkt_get32n(ip + 12));
	p->dst = ipaddr_from_v4(pkt_get32n(ip + 16));
	memcpy((uint8_t *)&p->frag_id + 2, ip + 4, 2);
	fragw = pkt_get16(ip + 6);
	p->frag = (fragw & 0x2000) || (fragw & 0x1fff);
	p->later_frag = (fragw & 0x1fff) != 0;
	if (p->later_frag)
		return PKT_OK;
	l4 = ip + p->ihl;
	l4len = p->ip_len - p->ihl;
	switch (p->proto) {
	case IPPROTO_TCP:
		if (l4len < 14)
			return p->frag ? PKT_OK : PKT_TRUNCATED;
		p->have_ports = 1;
		p->sport = pkt_get16n(l4);
		p->dport = pkt_get16n(l4 + 2);
		p->tcp_flags = l4[13];
		break;
	case IPPROTO_UDP:
		if (l4len < 8)
			return p->frag ? PKT_OK : PKT_TRUNCATED;
		p->have_ports = 1;
		p->sport = pkt_get16n(l4);
		p->dport = pkt_get16n(l4 + 2);
		break;
	case IPPROTO_ICMP:
		if (l4len < 8)
			return p->frag ? PKT_OK : PKT_TRUNCATED;
		p->icmp_type = l4[0];
		p->icmp_code = l4[1];
		if (p->icmp_type == 3 || p->icmp_type == 11 || p->icmp_type == 12)
			pkt_parse_icmp_inner(l4 + 8, l4len - 8, p);
		break;
	default:
		break;
	}
	return PKT_OK;
}

enum pkt_err pkt_parse(const uint8_t *frame, uint32_t len, struct pkt *p)
{
	memset(p, 0, sizeof(*p));
	if (len < ETH_HLEN_) {
		p->kind = PKT_OTHER;
		return PKT_TRUNCATED;
	}
	p->ethertype = pkt_get16(frame + 12);
	switch (p->ethertype) {
	case 0x0806:
		p->kind = PKT_ARP;
		return pkt_parse_arp(frame + ETH_HLEN_, len - ETH_HLEN_, p);
	case 0x0800:
		p->kind = PKT_IPV4;
		return pkt_parse_ipv4(frame + ETH_HLEN_, len - ETH_HLEN_, p);
	case 0x8100:
	case 0x88a8:
		p->kind = PKT_VLAN;
		return PKT_OK;
	default:
		p->kind = PKT_OTHER;
		return PKT_OK;
	}
}

const char *pkt_err_str(enum pkt_err e)
{
	static const char *s[] = { "ok", "truncated", "bad version", "bad header length", "bad total length",
				   "bad arp" };
	return (unsigned)e < sizeof(s) / sizeof(s[0]) ? s[e] : "?";
}

uint16_t pkt_csum(const void *data, uint32_t len)
{
	const uint8_t *b = data;
	uint32_t sum = 0;

	while (len > 1) {
		sum += (uint32_t)(b[0] << 8 | b[1]);
		b += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)(b[0] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

void pkt_arp_build(uint8_t *d, const uint8_t *src_mac, const uint8_t *eth_dst, uint16_t op, uint32_t spa,
		   const uint8_t *tha, uint32_t tpa)
{
	uint8_t *a = d + ETH_HLEN_;

	memset(d, 0, PKT_ARP_LEN);
	memcpy(d, eth_dst, 6);
	memcpy(d + 6, src_mac, 6);
	d[12] = 0x08;
	d[13] = 0x06;
	a[1] = 1;                       /* Ethernet */
	a[2] = 0x08;                    /* IPv4 */
	a[4] = 6;
	a[5] = 4;
	a[7] = (uint8_t)op;
	memcpy(a + 8, src_mac, 6);
	memcpy(a + 14, &spa, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, &tpa, 4);
}
