/* Frame parser: Ethernet, ARP, IPv4 (fragments, options), IPv6 (extension headers, RFC 8200 section 4),
 * TCP/UDP ports and flags, ICMP and ICMPv6 errors with their quoted header, Neighbour Solicitations and
 * Advertisements (RFC 4861 section 7.1). Every read is bounded by the captured length. Also the frames lbd
 * writes from scratch: ARP, Neighbour Solicitation and Advertisement. */
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

/* An upper-layer header shorter than its fixed part. A first fragment may be cut anywhere: it still goes
 * where its later fragments go, which are hashed on addresses only. */
static enum pkt_err pkt_l4_short(const struct pkt *p)
{
	return p->frag ? PKT_OK : PKT_TRUNCATED;
}

/* TCP or UDP ports (and TCP flags) of an upper-layer header of l4len bytes. */
static enum pkt_err pkt_parse_ports(const uint8_t *l4, uint32_t l4len, struct pkt *p)
{
	if (l4len < (p->proto == IPPROTO_TCP ? 14u : 8u))
		return pkt_l4_short(p);
	p->have_ports = 1;
	p->sport = pkt_get16n(l4);
	p->dport = pkt_get16n(l4 + 2);
	if (p->proto == IPPROTO_TCP)
		p->tcp_flags = l4[13];
	return PKT_OK;
}

/* The flow an ICMP error is about: the quoted TCP or UDP header at l4, of which l4len bytes are quoted
 * (at least the 8 that RFC 792 promises, for either family), between src and dst. */
static void pkt_set_inner(const uint8_t *l4, uint32_t l4len, uint8_t proto, const struct ipaddr *src,
			  const struct ipaddr *dst, struct pkt *p)
{
	if ((proto != IPPROTO_TCP && proto != IPPROTO_UDP) || l4len < 8)
		return;
	p->have_inner = 1;
	p->in_src = *src;
	p->in_dst = *dst;
	p->in_proto = proto;
	p->in_sport = pkt_get16n(l4);
	p->in_dport = pkt_get16n(l4 + 2);
}

/* The quoted header of an ICMP error: an IPv4 header and at least 8 bytes of its payload. */
static void pkt_parse_icmp_inner(const uint8_t *q, uint32_t len, struct pkt *p)
{
	struct ipaddr src, dst;
	uint32_t ihl;

	if (len < 20 || (q[0] >> 4) != 4)
		return;
	ihl = (uint32_t)(q[0] & 0x0f) * 4;
	if (ihl < 20 || len < ihl)
		return;
	if (pkt_get16(q + 6) & 0x1fff)     /* a non-first fragment quotes no ports */
		return;
	src = ipaddr_from_v4(pkt_get32n(q + 12));
	dst = ipaddr_from_v4(pkt_get32n(q + 16));
	pkt_set_inner(q + ihl, len - ihl, q[9], &src, &dst, p);
}

#define PKT_V6_MAX_EXT 8        /* extension headers we walk before calling the chain hostile */

/* Where the extension-header chain of an IPv6 header leads (RFC 8200 section 4). */
struct pkt_chain {
	uint8_t proto;          /* the last next header: the upper layer's, or a later fragment's payload's */
	uint32_t off;           /* bytes from the IP header to it */
	uint8_t fraghdr;        /* a fragment header was seen, atomic or not */
	uint8_t frag, later_frag;
	uint8_t frag_nh;        /* the fragment header's next header */
	uint32_t frag_id;       /* network order */
};

/* Walks the extension headers of the IPv6 header ip, of which end bytes belong to the packet: hop-by-hop
 * options (only first), routing (not type 0, deprecated by RFC 5095), destination options, fragment (once;
 * offset 0 without M is an atomic fragment, RFC 6946, not a fragment) and AH (RFC 4302: length in 4-byte
 * words, a multiple of 8 bytes in IPv6). The walk stops at the upper layer, at ESP or No Next Header, at
 * any value it does not know, and after the fragment header of a later fragment, whose payload is the
 * middle of a datagram. The extension headers it does not walk (Mobility, HIP, Shim6, 253, 254) are
 * PKT_BAD_EXT. */
static enum pkt_err pkt_ipv6_chain(const uint8_t *ip, uint32_t end, struct pkt_chain *c)
{
	uint8_t nh = ip[6];
	uint32_t off = 40, hlen;

	memset(c, 0, sizeof(*c));
	for (unsigned n = 0;; n++) {
		const uint8_t *h = ip + off;
		uint8_t type = nh;

		/* Extension headers lbd does not walk (RFC 7045's list: Mobility, HIP, Shim6, the experimental
		 * 253 and 254) make the chain one lbd cannot follow to the ports: dropped and counted. */
		if (type == 135 || type == 139 || type == 140 || type == 253 || type == 254)
			return PKT_BAD_EXT;
		if (type != 0 && type != 43 && type != 44 && type != 51 && type != 60)
			break;
		if (n == PKT_V6_MAX_EXT || (type == 0 && off != 40) || (type == 44 && c->fraghdr))
			return PKT_BAD_EXT;
		if (end - off < 2)
			return PKT_TRUNCATED;
		if (type == 44)
			hlen = 8;
		else if (type == 51)
			hlen = ((uint32_t)h[1] + 2) * 4;
		else
			hlen = ((uint32_t)h[1] + 1) * 8;
		if (type == 51 && (h[1] < 2 || h[1] % 2))
			return PKT_BAD_EXT;     /* shorter than SPI and sequence number, or not 8-byte aligned */
		if (end - off < hlen)
			return PKT_TRUNCATED;
		if (type == 43 && h[2] == 0)
			return PKT_BAD_EXT;
		off += hlen;
		nh = h[0];
		if (type == 44) {
			uint16_t offm = pkt_get16(h + 2);

			c->fraghdr = 1;
			c->frag_nh = nh;
			memcpy(&c->frag_id, h + 4, 4);
			c->frag = (offm & 0xfff8) || (offm & 1);
			c->later_frag = (offm & 0xfff8) != 0;
			if (c->later_frag)
				break;
		}
	}
	c->proto = nh;
	c->off = off;
	return PKT_OK;
}

/* The quoted packet of an ICMPv6 error (RFC 4443 section 2.4): an IPv6 header, its extension headers
 * and as much of the rest as fitted, len bytes in all. */
static void pkt_parse_icmp6_inner(const uint8_t *q, uint32_t len, struct pkt *p)
{
	struct pkt_chain c;
	struct ipaddr src, dst;

	if (len < 40 || (q[0] >> 4) != 6)
		return;
	if (pkt_ipv6_chain(q, len, &c) != PKT_OK || c.later_frag)
		return;
	src = ipaddr_from_v6(q + 8);
	dst = ipaddr_from_v6(q + 24);
	pkt_set_inner(q + c.off, len - c.off, c.proto, &src, &dst, p);
}

static int pkt_is_mcast6(const struct ipaddr *a)
{
	return a->b[0] == 0xff;
}

/* ff02::1:ff00:0/104, RFC 4291 section 2.7.1. */
static int pkt_is_solicited_node(const struct ipaddr *a)
{
	static const uint8_t prefix[13] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff };

	return memcmp(a->b, prefix, sizeof(prefix)) == 0;
}

/* A Neighbour Solicitation or Advertisement of len ICMPv6 bytes at m, validated as RFC 4861 sections 7.1.1
 * and 7.1.2 say; and, as RFC 6980 section 5 says, never one that carries a fragment header. Anything
 * invalid leaves nd_valid 0: lbd ignores it, as a host would. */
static void pkt_parse_nd(const uint8_t *m, uint32_t len, int fraghdr, struct pkt *p)
{
	int ns = m[0] == 135;
	uint8_t lltype = ns ? 1 : 2;
	const uint8_t *lladdr = NULL;
	struct ipaddr target;

	if (p->hop_limit != 255 || m[1] != 0 || len < 24 || fraghdr)
		return;
	target = ipaddr_from_v6(m + 8);
	if (pkt_is_mcast6(&target))
		return;
	if (pkt_csum6(&p->src, &p->dst, IPPROTO_ICMPV6, m, len) != 0)
		return;
	for (uint32_t off = 24; off < len;) {
		uint32_t olen;

		if (len - off < 2 || m[off + 1] == 0)
			return;
		olen = (uint32_t)m[off + 1] * 8;
		if (len - off < olen)
			return;
		if (ns && m[off] == 1 && ipaddr_is_none(&p->src))
			return;
		if (m[off] == lltype && olen == 8 && !lladdr)
			lladdr = m + off + 2;
		off += olen;
	}
	if (ns && ipaddr_is_none(&p->src) && !pkt_is_solicited_node(&p->dst))
		return;
	if (!ns && pkt_is_mcast6(&p->dst) && (m[4] & 0x40))
		return;
	p->nd_valid = 1;
	p->nd_target = target;
	p->nd_flags = ns ? 0 : m[4];
	p->nd_lladdr = lladdr;
}

/* The upper layer of an IPv4 or IPv6 packet, ihl bytes into it; fraghdr: an IPv6 fragment header came
 * before it, atomic or not. */
static enum pkt_err pkt_parse_l4(const uint8_t *ip, int fraghdr, struct pkt *p)
{
	const uint8_t *l4 = ip + p->ihl;
	uint32_t l4len = p->ip_len - p->ihl;
	int v6 = p->kind == PKT_IPV6;
	uint8_t t;

	if (p->later_frag)
		return PKT_OK;
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP)
		return pkt_parse_ports(l4, l4len, p);
	if (p->proto != (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP))
		return PKT_OK;
	if (l4len < 8)
		return pkt_l4_short(p);
	t = p->icmp_type = l4[0];
	p->icmp_code = l4[1];
	if (!v6 && (t == 3 || t == 11 || t == 12))
		pkt_parse_icmp_inner(l4 + 8, l4len - 8, p);
	else if (v6 && t >= 1 && t <= 4)        /* unreachable, too big, time exceeded, parameter problem */
		pkt_parse_icmp6_inner(l4 + 8, l4len - 8, p);
	else if (v6 && (t == 135 || t == 136))
		pkt_parse_nd(l4, l4len, fraghdr, p);
	return PKT_OK;
}

static enum pkt_err pkt_parse_ipv4(const uint8_t *ip, uint32_t len, struct pkt *p)
{
	uint16_t fragw;

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
	p->frag_proto = p->frag ? p->proto : 0;
	return pkt_parse_l4(ip, 0, p);
}

static enum pkt_err pkt_parse_ipv6(const uint8_t *ip, uint32_t len, struct pkt *p)
{
	uint32_t plen;
	struct pkt_chain c;
	enum pkt_err e;

	if (len < 40)
		return PKT_TRUNCATED;
	if ((ip[0] >> 4) != 6)
		return PKT_BAD_VERSION;
	plen = pkt_get16(ip + 4);
	/* Payload length 0 is a jumbogram (RFC 2675), which Ethernet does not carry. A packet of more than
	 * 65535 bytes in all (40 + payload length) would not fit ip_len: refused too, not misreported. */
	if (plen == 0 || 40 + plen > len || 40 + plen > 0xffff)
		return PKT_BAD_LEN;
	p->ip_len = (uint16_t)(40 + plen);
	p->hop_limit = ip[7];
	p->src = ipaddr_from_v6(ip + 8);
	p->dst = ipaddr_from_v6(ip + 24);
	e = pkt_ipv6_chain(ip, p->ip_len, &c);
	if (e != PKT_OK)
		return e;
	p->proto = c.proto;
	p->ihl = (uint16_t)c.off;
	p->frag = c.frag;
	p->later_frag = c.later_frag;
	p->frag_proto = c.frag ? c.frag_nh : 0;
	p->frag_id = c.frag_id;
	return pkt_parse_l4(ip, c.fraghdr, p);
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
	case 0x86dd:
		p->kind = PKT_IPV6;
		return pkt_parse_ipv6(frame + ETH_HLEN_, len - ETH_HLEN_, p);
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
				   "bad arp", "bad extension header" };
	return (unsigned)e < sizeof(s) / sizeof(s[0]) ? s[e] : "?";
}

/* Adds len bytes as big-endian 16-bit words (an odd last byte padded with zero) to sum. */
static uint64_t pkt_sum(const uint8_t *b, uint32_t len, uint64_t sum)
{
	while (len > 1) {
		sum += (uint32_t)(b[0] << 8 | b[1]);
		b += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)(b[0] << 8);
	return sum;
}

/* The one's complement of the folded sum, network order. */
static uint16_t pkt_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

uint16_t pkt_csum(const void *data, uint32_t len)
{
	return pkt_fold(pkt_sum(data, len, 0));
}

uint16_t pkt_csum6(const struct ipaddr *src, const struct ipaddr *dst, uint8_t next_header, const void *data,
		   uint32_t len)
{
	uint64_t sum = pkt_sum(src->b, 16, 0);

	sum = pkt_sum(dst->b, 16, sum);
	sum += (len >> 16) + (len & 0xffff) + next_header;
	return pkt_fold(pkt_sum(data, len, sum));
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

/* The 86-byte Neighbour Solicitation or Advertisement frame: Ethernet, IPv6 with hop limit 255 (RFC 4861
 * section 7.1 drops anything less), and a 24-byte message whose single option is the sender's link-layer
 * address (type 1 in a solicitation, 2 in an advertisement). */
static void pkt_nd_build(uint8_t *d, const uint8_t *src_mac, const uint8_t *eth_dst, const struct ipaddr *src,
			 const struct ipaddr *dst, uint8_t type, uint8_t flags, const struct ipaddr *target)
{
	uint8_t *ip = d + ETH_HLEN_, *m = ip + 40;
	uint16_t sum;

	_Static_assert(PKT_NA_LEN == PKT_NS_LEN && PKT_NA_LEN == ETH_HLEN_ + 40 + 32, "one ND frame layout");
	memset(d, 0, PKT_NA_LEN);
	memcpy(d, eth_dst, 6);
	memcpy(d + 6, src_mac, 6);
	d[12] = 0x86;
	d[13] = 0xdd;
	ip[0] = 0x60;
	ip[5] = 32;                     /* payload length */
	ip[6] = IPPROTO_ICMPV6;
	ip[7] = 255;
	memcpy(ip + 8, src->b, 16);
	memcpy(ip + 24, dst->b, 16);
	m[0] = type;
	m[4] = flags;
	memcpy(m + 8, target->b, 16);
	m[24] = type == 135 ? 1 : 2;
	m[25] = 1;                      /* 8 bytes */
	memcpy(m + 26, src_mac, 6);
	sum = pkt_csum6(src, dst, IPPROTO_ICMPV6, m, 32);
	memcpy(m + 2, &sum, 2);
}

void pkt_na_build(uint8_t *d, const uint8_t *src_mac, const uint8_t *eth_dst, const struct ipaddr *src,
		  const struct ipaddr *dst, const struct ipaddr *target, uint8_t flags)
{
	pkt_nd_build(d, src_mac, eth_dst, src, dst, 136, flags, target);
}

void pkt_una_build(uint8_t *d, const uint8_t *src_mac, const struct ipaddr *target)
{
	static const uint8_t all_nodes_mac[6] = { 0x33, 0x33, 0, 0, 0, 1 };
	static const struct ipaddr all_nodes = { .b = { 0xff, 0x02, [15] = 1 } };

	pkt_nd_build(d, src_mac, all_nodes_mac, target, &all_nodes, 136, 0x20, target);
}

void pkt_ns_build(uint8_t *d, const uint8_t *src_mac, const struct ipaddr *src, const struct ipaddr *target)
{
	uint8_t eth_dst[6] = { 0x33, 0x33, 0xff, target->b[13], target->b[14], target->b[15] };
	struct ipaddr dst = { .b = { 0xff, 0x02, [11] = 0x01, [12] = 0xff, [13] = target->b[13],
				     [14] = target->b[14], [15] = target->b[15] } };

	pkt_nd_build(d, src_mac, eth_dst, src, &dst, 135, 0, target);
}
