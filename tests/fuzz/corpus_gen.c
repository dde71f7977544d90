/* Writes the generated part of the fuzz targets' seed corpus: valid frames and messages built with the
 * project's own encoders (protobuf-c, the envelope), for the cluster of fuzz.h. `make fuzz-corpus`
 * runs it as `fuzz-corpus tests/fuzz/corpus`; files it does not name (findings kept as regressions,
 * hand-made hostile inputs) are left alone. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "control.pb-c.h"
#include "fuzz.h"
#include "heartbeat.pb-c.h"
#include "lbd/pkt.h"
#include "sync.pb-c.h"

static const char *outdir;

static void put(const char *target, const char *name, const void *buf, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* ---- frames ---- */

static const uint8_t mac_lbd[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t mac_router[6] = { 0x02, 0, 0, 0, 0, 0xfe };
static const uint8_t mac_bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static uint32_t ip(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

struct frame {
	uint8_t b[1600];
	size_t len;
};

static uint8_t *eth(struct frame *f, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	memcpy(f->b, dst, 6);
	memcpy(f->b + 6, src, 6);
	f->b[12] = (uint8_t)(type >> 8);
	f->b[13] = (uint8_t)type;
	f->len = 14;
	return f->b + 14;
}

static void arp(struct frame *f, const uint8_t *dst, const uint8_t *sha, uint16_t op, uint32_t spa, uint32_t tpa)
{
	uint8_t *a = eth(f, dst, sha, 0x0806);

	memset(a, 0, 28);
	a[1] = 1;
	a[2] = 0x08;
	a[4] = 6;
	a[5] = 4;
	a[7] = (uint8_t)op;
	memcpy(a + 8, sha, 6);
	memcpy(a + 14, &spa, 4);
	memcpy(a + 24, &tpa, 4);
	f->len += 28;
}

/* An IPv4 packet of l4len bytes of payload after the header; returns the payload. */
static uint8_t *ipv4(struct frame *f, uint32_t src, uint32_t dst, uint8_t proto, size_t l4len, uint16_t fragw)
{
	uint8_t *h = eth(f, mac_lbd, mac_router, 0x0800);
	uint16_t tot = (uint16_t)(20 + l4len), c;

	memset(h, 0, 20 + l4len);
	h[0] = 0x45;
	h[2] = (uint8_t)(tot >> 8);
	h[3] = (uint8_t)tot;
	h[6] = (uint8_t)(fragw >> 8);
	h[7] = (uint8_t)fragw;
	h[8] = 64;
	h[9] = proto;
	memcpy(h + 12, &src, 4);
	memcpy(h + 16, &dst, 4);
	c = pkt_csum(h, 20);
	memcpy(h + 10, &c, 2);
	f->len += tot;
	return h + 20;
}

static void tcp(struct frame *f, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, uint8_t flags)
{
	uint8_t *t = ipv4(f, src, dst, 6, 20, 0x4000);

	t[0] = (uint8_t)(sport >> 8);
	t[1] = (uint8_t)sport;
	t[2] = (uint8_t)(dport >> 8);
	t[3] = (uint8_t)dport;
	t[12] = 0x50;
	t[13] = flags;
}

static void udp(struct frame *f, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, uint16_t fragw,
		size_t len)
{
	uint8_t *u = ipv4(f, src, dst, 17, len, fragw);

	u[0] = (uint8_t)(sport >> 8);
	u[1] = (uint8_t)sport;
	u[2] = (uint8_t)(dport >> 8);
	u[3] = (uint8_t)dport;
	u[5] = 8;
}

static void icmp_echo(struct frame *f, uint32_t src, uint32_t dst)
{
	uint8_t *i = ipv4(f, src, dst, 1, 16, 0);
	uint16_t c;

	i[0] = 8;
	i[7] = 1;
	memcpy(i + 8, "fuzzping", 8);
	c = pkt_csum(i, 16);
	memcpy(i + 2, &c, 2);
}

/* Fragmentation needed, from a router, about the backend's reply VIP:vport -> client:cport. */
static void icmp_frag_needed(struct frame *f, uint32_t router, uint32_t client, uint16_t cport, uint32_t vip,
			     uint16_t vport)
{
	uint8_t *i = ipv4(f, router, vip, 1, 8 + 28, 0), *q = i + 8;

	i[0] = 3;
	i[1] = 4;
	i[6] = 0x05;
	i[7] = 0xdc;
	q[0] = 0x45;
	q[3] = 40;
	q[8] = 64;
	q[9] = 6;
	memcpy(q + 12, &vip, 4);
	memcpy(q + 16, &client, 4);
	q[20] = (uint8_t)(vport >> 8);
	q[21] = (uint8_t)vport;
	q[22] = (uint8_t)(cport >> 8);
	q[23] = (uint8_t)cport;
}

/* An IPv6 packet from src to dst: the n extension headers of ext (each as its next-header value: 0
 * hop-by-hop and 60 destination options of 8 bytes, 43 a type 2 routing header, 44 a fragment header
 * with offm, 51 AH of 24 bytes), then l4len bytes of proto. Returns the upper-layer payload. */
static uint8_t *ipv6(struct frame *f, const char *src, const char *dst, const uint8_t *ext, size_t n,
		     uint16_t offm, uint8_t proto, size_t l4len)
{
	uint8_t *h = eth(f, mac_lbd, mac_router, 0x86dd), *e = h + 40;
	struct ipaddr s, d;

	ipaddr_parse(src, &s);
	ipaddr_parse(dst, &d);
	memset(h, 0, 40);
	h[0] = 0x60;
	h[6] = n ? ext[0] : proto;
	h[7] = 64;
	memcpy(h + 8, s.b, 16);
	memcpy(h + 24, d.b, 16);
	for (size_t i = 0; i < n; i++) {
		size_t len = ext[i] == 43 || ext[i] == 51 ? 24 : 8;

		memset(e, 0, len);
		e[0] = i + 1 < n ? ext[i + 1] : proto;
		if (ext[i] == 43) {
			e[1] = 2;
			e[2] = 2;
			memcpy(e + 8, d.b, 16);
		} else if (ext[i] == 44) {
			e[2] = (uint8_t)(offm >> 8);
			e[3] = (uint8_t)offm;
			e[7] = 0x2a;
		} else if (ext[i] == 51) {
			e[1] = 4;
			e[7] = 0x01;    /* SPI 1 */
		} else {
			e[2] = 1;       /* PadN */
			e[3] = 4;
		}
		e += len;
	}
	memset(e, 0, l4len);
	h[4] = (uint8_t)((e - h - 40 + l4len) >> 8);
	h[5] = (uint8_t)(e - h - 40 + l4len);
	f->len += (size_t)(e - h) + l4len;
	return e;
}

static void ports(uint8_t *l4, uint16_t sport, uint16_t dport)
{
	l4[0] = (uint8_t)(sport >> 8);
	l4[1] = (uint8_t)sport;
	l4[2] = (uint8_t)(dport >> 8);
	l4[3] = (uint8_t)dport;
}

/* Sets the ICMPv6 checksum of the len-byte message m of the IPv6 frame f (no extension headers). */
static void icmp6_csum(struct frame *f, uint8_t *m, size_t len)
{
	struct ipaddr s, d;
	uint16_t c;

	memcpy(s.b, f->b + 14 + 8, 16);
	memcpy(d.b, f->b + 14 + 24, 16);
	m[2] = m[3] = 0;
	c = pkt_csum6(&s, &d, 58, m, (uint32_t)len);
	memcpy(m + 2, &c, 2);
}

/* The IPv6 frames of the pkt target: what lbd forwards, answers and ignores on an IPv6 segment. */
static void gen_frames6(void)
{
	static const char vip[] = "2001:db8::100", client[] = "2001:db8:1::7", router[] = "2001:db8::1";
	static const char be[] = "2001:db8::21";
	static const uint8_t chain[] = { 0, 60, 43, 51 }, frag = 44, dstopts = 60, routing = 43;
	static const uint8_t nine[] = { 0, 60, 43, 60, 43, 60, 43, 60, 60 };
	struct ipaddr a_vip, a_router, a_be, all_nodes;
	static const uint8_t all_nodes_mac[6] = { 0x33, 0x33, 0, 0, 0, 1 };
	uint8_t be_mac[6] = { 0x02, 0, 0, 0, 0, 0x33 };
	struct frame f;
	uint8_t *p;

	p = ipv6(&f, client, vip, NULL, 0, 0, 6, 20);
	ports(p, 40000, 80);
	p[12] = 0x50;
	p[13] = 0x02;
	put("pkt", "tcp6-syn-vip", f.b, f.len);
	p = ipv6(&f, client, vip, NULL, 0, 0, 17, 20);
	ports(p, 5353, 53);
	p[5] = 20;
	put("pkt", "udp6-vip", f.b, f.len);
	p = ipv6(&f, client, vip, chain, sizeof(chain), 0, 6, 20);
	ports(p, 40000, 80);
	p[12] = 0x50;
	p[13] = 0x10;
	put("pkt", "tcp6-extension-chain", f.b, f.len);
	p = ipv6(&f, client, vip, &frag, 1, 1, 17, 1232);
	ports(p, 5353, 53);
	put("pkt", "udp6-first-fragment", f.b, f.len);
	ipv6(&f, client, vip, &frag, 1, 1232, 17, 100);
	put("pkt", "udp6-later-fragment", f.b, f.len);
	p = ipv6(&f, client, vip, NULL, 0, 0, 58, 16);
	p[0] = 128;
	p[7] = 1;
	memcpy(p + 8, "fuzzping", 8);
	icmp6_csum(&f, p, 16);
	put("pkt", "icmp6-echo-vip", f.b, f.len);
	/* Packet Too Big from a router about the backend's reply VIP:80 -> client:40000, behind a
	 * destination-options header. */
	p = ipv6(&f, router, vip, NULL, 0, 0, 58, 8 + 40 + 8 + 8);
	p[0] = 2;
	p[6] = 0x05;
	p[7] = 0x00;
	{
		struct frame q;

		ports(ipv6(&q, vip, client, &dstopts, 1, 0, 6, 20), 80, 40000);
		memcpy(p + 8, q.b + 14, 40 + 8 + 8);
	}
	icmp6_csum(&f, p, 8 + 40 + 8 + 8);
	put("pkt", "icmp6-packet-too-big", f.b, f.len);
	/* Neighbour discovery: a router asks for the VIP, a backend answers lbd, an unsolicited NA. */
	ipaddr_parse(vip, &a_vip);
	ipaddr_parse(router, &a_router);
	ipaddr_parse(be, &a_be);
	ipaddr_parse("ff02::1", &all_nodes);
	pkt_ns_build(f.b, mac_router, &a_router, &a_vip);
	put("pkt", "ns-vip", f.b, PKT_NS_LEN);
	pkt_na_build(f.b, be_mac, mac_lbd, &a_be, &a_router, &a_be, 0x60);
	put("pkt", "na-backend", f.b, PKT_NA_LEN);
	pkt_na_build(f.b, mac_lbd, all_nodes_mac, &a_vip, &all_nodes, &a_vip, 0x20);
	put("pkt", "na-unsolicited-vip", f.b, PKT_NA_LEN);
	/* Hostile: routing type 0, nine extension headers, a header longer than the packet, a
	 * payload length past the frame. */
	ipv6(&f, client, vip, &routing, 1, 0, 6, 20);
	f.b[14 + 40 + 2] = 0;
	put("pkt", "ipv6-routing-type0", f.b, f.len);
	ipv6(&f, client, vip, nine, sizeof(nine), 0, 6, 20);
	put("pkt", "ipv6-nine-extensions", f.b, f.len);
	ipv6(&f, client, vip, &dstopts, 1, 0, 6, 20);
	f.b[14 + 40 + 1] = 0xff;
	put("pkt", "ipv6-extension-past-end", f.b, f.len);
	ipv6(&f, client, vip, NULL, 0, 0, 17, 20);
	f.b[14 + 4] = 0x40;
	put("pkt", "ipv6-payload-length-past-end", f.b, f.len);
}

/* A fuzz_fwd input: a mode byte, then frames with their status byte and length. */
struct run {
	uint8_t b[8192];
	size_t len;
};

static void run_init(struct run *r, uint8_t mode)
{
	r->b[0] = mode;
	r->len = 1;
}

static void run_add(struct run *r, uint8_t status, const struct frame *f)
{
	r->b[r->len++] = status;
	r->b[r->len++] = (uint8_t)(f->len >> 8);
	r->b[r->len++] = (uint8_t)f->len;
	memcpy(r->b + r->len, f->b, f->len);
	r->len += f->len;
}

static void gen_frames(void)
{
	uint32_t vip = ip("192.0.2.100"), vip2 = ip("192.0.2.101"), client = ip("198.51.100.7");
	uint32_t router = ip("203.0.113.1"), be = ip("192.0.2.21"), other = ip("192.0.2.77");
	uint8_t be_mac[6] = { 0x02, 0, 0, 0, 0, 0x33 }, peer_mac[6] = { 0x02, 0, 0, 0, 0, 0x02 };
	struct frame f;
	struct run r;
	uint8_t *p;

	arp(&f, mac_bcast, mac_router, 1, router, vip);
	put("pkt", "arp-request-vip", f.b, f.len);
	arp(&f, mac_lbd, be_mac, 2, be, ip("192.0.2.11"));
	put("pkt", "arp-reply-backend", f.b, f.len);
	tcp(&f, client, 40000, vip, 80, 0x02);
	put("pkt", "tcp-syn-vip", f.b, f.len);
	udp(&f, client, 5353, vip, 53, 0, 20);
	put("pkt", "udp-vip", f.b, f.len);
	icmp_echo(&f, client, vip);
	put("pkt", "icmp-echo-vip", f.b, f.len);
	icmp_frag_needed(&f, router, client, 40000, vip, 80);
	put("pkt", "icmp-frag-needed", f.b, f.len);
	udp(&f, client, 5353, vip, 53, 0x2000, 1480);
	put("pkt", "udp-first-fragment", f.b, f.len);
	p = ipv4(&f, client, vip, 17, 100, 185);
	(void)p;
	put("pkt", "udp-later-fragment", f.b, f.len);
	p = eth(&f, mac_lbd, mac_router, 0x8100);
	memset(p, 0, 24);
	f.len += 24;
	put("pkt", "vlan", f.b, f.len);
	p = eth(&f, mac_lbd, mac_router, 0x86dd);
	memset(p, 0, 40);
	p[0] = 0x60;
	f.len += 40;
	put("pkt", "ipv6", f.b, f.len);
	/* Hostile: options that run past the frame, a total length beyond it, a short ARP. */
	tcp(&f, client, 40000, vip, 80, 0x02);
	f.b[14] = 0x4f;
	put("pkt", "bad-ihl-past-end", f.b, f.len);
	tcp(&f, client, 40000, vip, 80, 0x02);
	f.b[16] = 0xff;
	put("pkt", "bad-total-length", f.b, f.len);
	arp(&f, mac_bcast, mac_router, 1, router, vip);
	put("pkt", "arp-truncated", f.b, 14 + 20);

	/* fwd: whole conversations, active and owner unless said otherwise. */
	run_init(&r, 3);
	tcp(&f, client, 40000, vip, 80, 0x02);
	run_add(&r, 0, &f);
	tcp(&f, client, 40000, vip, 80, 0x10);
	run_add(&r, 0, &f);
	tcp(&f, client, 40000, vip, 80, 0x18);
	run_add(&r, 0, &f);
	icmp_frag_needed(&f, router, client, 40000, vip, 80);
	run_add(&r, 0, &f);
	tcp(&f, client, 40000, vip, 80, 0x11);
	run_add(&r, 0, &f);
	tcp(&f, client, 40000, vip, 80, 0x04);
	run_add(&r, 0, &f);
	tcp(&f, client, 40000, vip, 80, 0x02);
	run_add(&r, 0, &f);
	put("fwd", "tcp-conversation", r.b, r.len);
	r.b[0] = 3 | 4;
	put("fwd", "tcp-conversation-degraded", r.b, r.len);
	r.b[0] = 0;
	put("fwd", "tcp-conversation-standby", r.b, r.len);

	run_init(&r, 3);
	udp(&f, client, 5353, vip, 53, 0, 20);
	run_add(&r, 0, &f);
	udp(&f, client, 5353, vip, 53, 0x2000, 1480);
	run_add(&r, 0, &f);
	ipv4(&f, client, vip, 17, 100, 185);
	run_add(&r, 0, &f);
	tcp(&f, client, 41000, vip2, 25, 0x02);
	run_add(&r, 0, &f);
	tcp(&f, client, 41000, vip, 443, 0x02);
	run_add(&r, 0, &f);
	icmp_echo(&f, client, vip);
	run_add(&r, 0, &f);
	udp(&f, client, 5353, vip, 53, 0, 20);
	run_add(&r, 1, &f);
	run_add(&r, 2, &f);
	put("fwd", "udp-fragments-echo-mail", r.b, r.len);
	r.b[0] = 3 | 4;
	put("fwd", "udp-fragments-echo-mail-degraded", r.b, r.len);

	run_init(&r, 3);
	arp(&f, mac_bcast, mac_router, 1, router, vip);
	run_add(&r, 0, &f);
	arp(&f, mac_lbd, be_mac, 2, be, ip("192.0.2.11"));
	run_add(&r, 0, &f);
	arp(&f, mac_bcast, be_mac, 2, vip, vip);
	run_add(&r, 0, &f);
	arp(&f, mac_bcast, peer_mac, 1, vip, vip);
	run_add(&r, 0, &f);
	arp(&f, mac_bcast, mac_router, 1, router, other);
	run_add(&r, 0, &f);
	arp(&f, mac_lbd, be_mac, 2, ip("192.0.2.31"), ip("192.0.2.11"));
	run_add(&r, 0, &f);
	put("fwd", "arp-mix", r.b, r.len);
	r.b[0] = 1 | 4;
	put("fwd", "arp-mix-not-owner-degraded", r.b, r.len);
}

/* fwd over IPv6: a TCP conversation with the web6 service, a Packet Too Big about it, echo, neighbour
 * discovery for the VIP and from a backend, active and owner unless said otherwise. */
static void gen_fwd6(void)
{
	static const char vip[] = "2001:db8::100", client[] = "2001:db8:1::7", router[] = "2001:db8::1";
	static const uint8_t flags[] = { 0x02, 0x10, 0x18, 0x11, 0x04 };
	struct ipaddr a_vip, a_router, a_be;
	uint8_t be_mac[6] = { 0x02, 0, 0, 0, 0, 0x33 };
	struct frame f, q;
	struct run r;
	uint8_t *p;

	ipaddr_parse(vip, &a_vip);
	ipaddr_parse(router, &a_router);
	ipaddr_parse("2001:db8::21", &a_be);
	run_init(&r, 3);
	for (size_t i = 0; i < sizeof(flags); i++) {
		p = ipv6(&f, client, vip, NULL, 0, 0, 6, 20);
		ports(p, 40000, 80);
		p[12] = 0x50;
		p[13] = flags[i];
		run_add(&r, 0, &f);
	}
	p = ipv6(&f, router, vip, NULL, 0, 0, 58, 8 + 40 + 8 + 8);
	p[0] = 2;
	p[6] = 0x05;
	ports(ipv6(&q, vip, client, NULL, 0, 0, 6, 20), 80, 40000);
	memcpy(p + 8, q.b + 14, 40 + 8 + 8);
	icmp6_csum(&f, p, 8 + 40 + 8 + 8);
	run_add(&r, 0, &f);
	p = ipv6(&f, client, vip, NULL, 0, 0, 58, 16);
	p[0] = 128;
	memcpy(p + 8, "fuzzping", 8);
	icmp6_csum(&f, p, 16);
	run_add(&r, 0, &f);
	pkt_ns_build(f.b, mac_router, &a_router, &a_vip);
	f.len = PKT_NS_LEN;
	run_add(&r, 0, &f);
	pkt_na_build(f.b, be_mac, mac_lbd, &a_be, &a_router, &a_be, 0x60);
	f.len = PKT_NA_LEN;
	run_add(&r, 0, &f);
	put("fwd", "ipv6-conversation", r.b, r.len);
	r.b[0] = 3 | 4;
	put("fwd", "ipv6-conversation-degraded", r.b, r.len);
	r.b[0] = 1;
	put("fwd", "ipv6-conversation-not-owner", r.b, r.len);
}

/* ---- messages ---- */

static void put_msg(const char *target, const char *name, uint8_t mode, const ProtobufCMessage *const *ms,
		    size_t n, int framed)
{
	static uint8_t buf[1 << 16];
	size_t len = 0;

	buf[len++] = mode;
	for (size_t i = 0; i < n; i++) {
		size_t plen = protobuf_c_message_get_packed_size(ms[i]);
		if (len + 2 + plen > sizeof(buf))
			exit(1);
		if (framed) {
			buf[len++] = (uint8_t)(plen >> 8);
			buf[len++] = (uint8_t)plen;
		}
		protobuf_c_message_pack(ms[i], buf + len);
		len += plen;
	}
	put(target, name, buf, len);
}

/* A master's heartbeat alone; backup, master, stopping, backup; the first two of those replayed: for
 * the cluster mode selects, the names prefixed with prefix. */
static void put_election(const Dsrlb__Heartbeat *master, const char *prefix, uint8_t mode)
{
	Dsrlb__Heartbeat backup = *master, stop = *master;
	const ProtobufCMessage *ms[4] = { &backup.base, &master->base, &stop.base, &backup.base };
	char name[64];

	backup.state = DSRLB__NODE_STATE__STATE_BACKUP;
	stop.priority = 0;
	stop.stopping = 1;
	snprintf(name, sizeof(name), "%smaster", prefix);
	put_msg("heartbeat", name, mode, &ms[1], 1, 1);
	snprintf(name, sizeof(name), "%sbackup-master-stop-backup", prefix);
	put_msg("heartbeat", name, mode, ms, 4, 1);
	snprintf(name, sizeof(name), "%sreplayed", prefix);
	put_msg("heartbeat", name, mode | 2, ms, 2, 1);
}

/* Mode bit 2: fuzz_heartbeat's IPv6 cluster (lb2 = 2001:db8::12). v4 is a valid heartbeat of the IPv4
 * cluster, to mix the families. */
static void gen_heartbeats6(const Dsrlb__Heartbeat *v4)
{
	static const uint8_t lb2[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x12 };
	static const uint8_t vip[16] = { 0x20, 0x01, 0x0d, 0xb8, [14] = 0x01, [15] = 0x00 };
	uint32_t vips[1] = { ip("192.0.2.100") };
	ProtobufCBinaryData vips6[2] = { { 16, (uint8_t *)vip }, { 16, (uint8_t *)vip } };
	Dsrlb__Heartbeat master = *v4, bad;
	const ProtobufCMessage *ms[1];

	master.address = 0;
	master.address6.data = (uint8_t *)lb2;
	master.address6.len = 16;
	master.n_vips = 1;
	master.vips = vips;
	master.n_vips6 = 1;
	master.vips6 = vips6;
	put_election(&master, "ipv6-", 4);
	/* The other family's sender, each way: not our peer. */
	ms[0] = &master.base;
	put_msg("heartbeat", "ipv4-cluster-ipv6-sender", 0, ms, 1, 1);
	ms[0] = &v4->base;
	put_msg("heartbeat", "ipv6-cluster-ipv4-sender", 4, ms, 1, 1);
	/* Malformed addresses in an authentic heartbeat. */
	ms[0] = &bad.base;
	bad = master;
	bad.address6.len = 15;
	put_msg("heartbeat", "ipv6-address6-15-bytes", 4, ms, 1, 1);
	bad = master;
	bad.address = ip("192.0.2.12");
	put_msg("heartbeat", "ipv6-both-addresses", 4, ms, 1, 1);
	bad = master;
	vips6[1].len = 4;
	bad.n_vips6 = 2;
	put_msg("heartbeat", "ipv6-vips6-4-bytes", 4, ms, 1, 1);
}

static void gen_heartbeats(void)
{
	uint32_t vips[2] = { ip("192.0.2.100"), ip("192.0.2.101") };
	uint8_t digest[CFG_DIGEST_LEN] = { 0 };
	Dsrlb__Heartbeat master = DSRLB__HEARTBEAT__INIT, backup, novips, stranger;
	Dsrlb__Envelope env = DSRLB__ENVELOPE__INIT;
	const ProtobufCMessage *ms[1];
	uint8_t box[64] = { 0 };

	master.node = "lb2";
	master.priority = 100;
	master.state = DSRLB__NODE_STATE__STATE_MASTER;
	master.advert_interval_ms = 100;
	master.n_vips = 2;
	master.vips = vips;
	master.config_digest.data = digest;
	master.config_digest.len = sizeof(digest);
	master.lbd_healthy = 1;
	master.flow_count = 12345;
	master.sync_state = "established";
	master.address = ip("192.0.2.12");
	backup = master;
	backup.state = DSRLB__NODE_STATE__STATE_BACKUP;
	novips = master;
	novips.n_vips = 0;
	novips.vips = NULL;
	stranger = master;
	stranger.node = "lb9";

	put_election(&master, "", 0);
	ms[0] = &stranger.base;
	put_msg("heartbeat", "names-another-node", 0, ms, 1, 1);
	/* What the peer says is shown by vrrpd's status: strings that need escaping in JSON. */
	backup.sync_state = "\"}\n\x01\x1b[31m\xff";
	ms[0] = &backup.base;
	put_msg("heartbeat", "hostile-sync-state", 0, ms, 1, 1);
	/* vrrpd/advert.c copied the VIPs from NULL for a heartbeat without any (UBSan, found by this target). */
	ms[0] = &novips.base;
	put_msg("heartbeat", "regress-no-vips-memcpy-null", 0, ms, 1, 1);
	/* As from a host without the key: an envelope that is well-formed but sealed by no one. */
	env.version = 1;
	env.key_id = 0x12345678;
	env.kind = DSRLB__KIND__KIND_HEARTBEAT;
	env.sender = "lb2";
	env.epoch = 1;
	env.counter = 1;
	env.challenge = 7;
	env.box.data = box;
	env.box.len = sizeof(box);
	ms[0] = &env.base;
	put_msg("heartbeat", "raw-forged-envelope", 1, ms, 1, 1);
	gen_heartbeats6(&master);
}

static void ip6(const char *s, uint8_t *out)
{
	inet_pton(AF_INET6, s, out);
}

/* Three flows to one TCP service, the caller's addresses aside: two connections and the deletion of
 * the first. */
static void sync_flows3(Dsrlb__SyncFlow fl[3], Dsrlb__SyncFlow *fp[3])
{
	for (int i = 0; i < 3; i++) {
		dsrlb__sync_flow__init(&fl[i]);
		fl[i].sport = 40000 + i;
		fl[i].dport = 80;
		fl[i].proto = 6;
		fl[i].state = 2;
		fl[i].idle_ms = 1000;
		fp[i] = &fl[i];
	}
	fl[2].deleted = 1;
	fl[2].sport = 40000;
}

/* An UPDATE of the three flows and a BULK_CHUNK that is the whole table, after an accepted HELLO. */
static void sync_update_chunk(const Dsrlb__SyncMessage *hello, Dsrlb__SyncFlow **fp, Dsrlb__SyncMessage *update,
			      Dsrlb__SyncMessage *chunk)
{
	*update = *hello;
	update->type = DSRLB__SYNC_TYPE__SYNC_UPDATE;
	update->n_flows = 3;
	update->flows = fp;
	update->sent_ms = 1;
	*chunk = *update;
	chunk->type = DSRLB__SYNC_TYPE__SYNC_BULK_CHUNK;
	chunk->total = 3;
	chunk->done = 1;
}

/* IPv6 flows (proto/sync.proto: saddr6, daddr6, backend6): an update and a bulk chunk of them, and an
 * update of every variant a decoder must refuse. The fuzz cluster may be IPv4-only, and then these are
 * the flows lbd drops and counts (no_ipv6) rather than installs. */
static void gen_sync6(const Dsrlb__SyncMessage *hello)
{
	static uint8_t s6[16], d6[16], b6[16], mapped[16], short6[15];
	Dsrlb__SyncMessage update, chunk, bad = *hello;
	Dsrlb__SyncFlow fl[3], hf[7], *fp[3], *hp[7];
	const ProtobufCMessage *ms[4];

	ip6("2001:db8:1::7", s6);
	ip6("2001:db8::100", d6);
	ip6("2001:db8::22", b6);
	ip6("::ffff:192.0.2.22", mapped);
	memcpy(short6, b6, sizeof(short6));
	sync_flows3(fl, fp);
	for (int i = 0; i < 3; i++) {
		fl[i].saddr6 = (ProtobufCBinaryData){ 16, s6 };
		fl[i].daddr6 = (ProtobufCBinaryData){ 16, d6 };
		fl[i].backend6 = (ProtobufCBinaryData){ 16, b6 };
	}
	sync_update_chunk(hello, fp, &update, &chunk);
	ms[0] = &hello->base;
	ms[1] = &update.base;
	ms[2] = &chunk.base;
	put_msg("sync", "session-ipv6", 0, ms, 3, 1);
	put_msg("sync", "session-ipv6-active", 2, ms, 3, 1);

	for (int i = 0; i < 7; i++) {
		hf[i] = fl[0];
		hp[i] = &hf[i];
	}
	hf[0].saddr6.len = 15;                                  /* a *6 field of 15 bytes */
	hf[0].saddr6.data = short6;
	hf[1].backend6 = (ProtobufCBinaryData){ 15, short6 };
	hf[2].daddr6 = (ProtobufCBinaryData){ 16, mapped };     /* IPv4-mapped in a *6 field */
	hf[3].backend6 = (ProtobufCBinaryData){ 16, mapped };
	hf[4].saddr = ip("198.51.100.7");                       /* IPv6 flow with an IPv4 field */
	hf[5].saddr6 = (ProtobufCBinaryData){ 0, NULL };        /* IPv4 flow with IPv6 fields */
	hf[5].saddr = ip("198.51.100.7");
	hf[5].daddr = ip("192.0.2.100");
	hf[6].backend = ip("192.0.2.22");
	bad.type = DSRLB__SYNC_TYPE__SYNC_UPDATE;
	bad.n_flows = 7;
	bad.flows = hp;
	bad.sent_ms = 1;
	ms[1] = &bad.base;
	put_msg("sync", "hostile-flows6", 0, ms, 2, 1);
}

static void gen_sync(void)
{
	Dsrlb__SyncMessage hello = DSRLB__SYNC_MESSAGE__INIT, update, req, chunk, ack, state;
	Dsrlb__SyncFlow fl[3], *fp[3];
	Dsrlb__SyncNodeState ns = DSRLB__SYNC_NODE_STATE__INIT;
	static uint8_t digest[7] = { 1, 2, 3 };        /* not 32 bytes: no match */
	const ProtobufCMessage *ms[6];

	sync_flows3(fl, fp);
	for (int i = 0; i < 3; i++) {
		fl[i].saddr = ip("198.51.100.7");
		fl[i].daddr = ip("192.0.2.100");
		fl[i].backend = ip("192.0.2.22");
	}
	hello.type = DSRLB__SYNC_TYPE__SYNC_HELLO;
	hello.peer_accepted = 1;
	sync_update_chunk(&hello, fp, &update, &chunk);
	req = hello;
	req.type = DSRLB__SYNC_TYPE__SYNC_BULK_REQUEST;
	ack = hello;
	ack.type = DSRLB__SYNC_TYPE__SYNC_ACK;
	ack.sent_ms = 1;
	state = hello;
	state.type = DSRLB__SYNC_TYPE__SYNC_NODE_STATE;
	ns.name = "lb2";
	ns.forwarding = 1;
	ns.announced = -1;
	ns.announce_why = "\x1b[31mred\xff and more than sixty-three bytes of reason, which lbd cuts short";
	ns.flows = UINT64_MAX;
	ns.config_digest.data = digest;
	ns.config_digest.len = sizeof(digest);
	state.node = &ns;

	ms[0] = &hello.base;
	ms[1] = &update.base;
	ms[2] = &req.base;
	ms[3] = &chunk.base;
	ms[4] = &ack.base;
	put_msg("sync", "session", 0, ms, 5, 1);
	put_msg("sync", "session-standby-degraded", 4, ms, 5, 1);
	put_msg("sync", "session-active", 2, ms, 5, 1);
	ms[1] = &state.base;
	put_msg("sync", "node-state", 0, ms, 2, 1);
	/* Raw stream: a length prefix over the limit, then one that never completes. */
	put("sync", "raw-oversized-length", (uint8_t[]){ 1, 0, 8, 0xff, 0xff, 0xff, 0xff, 0, 1, 2, 3 }, 11);
	put("sync", "raw-partial-frame", (uint8_t[]){ 1, 0, 6, 0, 0, 1, 0, 0x0a, 0x00 }, 9);
	gen_sync6(&hello);
}

static void gen_ctl(void)
{
	Dsrlb__LbdRequest status = DSRLB__LBD_REQUEST__INIT, flows, active, standby, drain, undrain, bogus, garp,
		reload;
	const ProtobufCMessage *ms[9];

	status.cmd = DSRLB__LBD_CMD__LBD_CMD_STATUS;
	flows = status;
	flows.cmd = DSRLB__LBD_CMD__LBD_CMD_FLOWS;
	flows.limit = 10;
	active = status;
	active.cmd = DSRLB__LBD_CMD__LBD_CMD_SET_MODE;
	active.active = 1;
	active.fence_ms = 300;
	active.garp = 1;
	standby = active;
	standby.active = 0;
	standby.release_ms = 250;
	drain = status;
	drain.cmd = DSRLB__LBD_CMD__LBD_CMD_DRAIN;
	drain.service = "web";
	drain.backend = "192.0.2.22";
	undrain = drain;
	undrain.cmd = DSRLB__LBD_CMD__LBD_CMD_UNDRAIN;
	bogus = drain;
	bogus.service = "nope";
	bogus.backend = "not-an-address";
	garp = status;
	garp.cmd = DSRLB__LBD_CMD__LBD_CMD_GARP;
	reload = status;
	reload.cmd = DSRLB__LBD_CMD__LBD_CMD_RELOAD;

	ms[0] = &status.base;
	put_msg("ctl", "status", 0, ms, 1, 1);
	ms[0] = &active.base;
	ms[1] = &status.base;
	ms[2] = &flows.base;
	ms[3] = &drain.base;
	ms[4] = &bogus.base;
	ms[5] = &undrain.base;
	ms[6] = &garp.base;
	ms[7] = &standby.base;
	ms[8] = &reload.base;
	put_msg("ctl", "every-command", 0, ms, 9, 1);
	put_msg("ctl", "every-command-active-degraded", 2 | 4, ms, 9, 1);
	put_msg("ctl", "every-command-standalone", 8, ms, 9, 1);
	/* A client with read rights only, and one with none (refused, then closed after its answer). */
	put_msg("ctl", "every-command-read-only", 16 | 2, ms, 9, 1);
	put_msg("ctl", "every-command-no-rights", 32, ms, 9, 1);
	/* Raw stream: a length over IPC_MAX_REQ; a request cut short by the client's hang-up. */
	put("ctl", "raw-oversized-length", (uint8_t[]){ 1, 0, 4, 0x7f, 0xff, 0xff, 0xff }, 7);
	put("ctl", "raw-truncated", (uint8_t[]){ 1, 0, 6, 0, 0, 0, 9, 0x08, 0x01 }, 9);
}

static void gen_pbjson(void)
{
	Dsrlb__LbdResponse r = DSRLB__LBD_RESPONSE__INIT;
	Dsrlb__LbdStatus st = DSRLB__LBD_STATUS__INIT;
	Dsrlb__Counters c = DSRLB__COUNTERS__INIT;
	Dsrlb__VrrpResponse vr = DSRLB__VRRP_RESPONSE__INIT;
	Dsrlb__VrrpStatus vs = DSRLB__VRRP_STATUS__INIT;
	Dsrlb__Heartbeat hb = DSRLB__HEARTBEAT__INIT;
	uint32_t vips[1] = { ip("192.0.2.100") };
	static uint8_t buf[4096];
	size_t len;

	c.rx_frames = 1000;
	c.forwarded = 990;
	st.counters = &c;
	r.ok = 1;
	r.status = &st;
	r.error = "quote \" backslash \\ newline \n tab \t bell \a";
	buf[0] = 7;     /* LbdResponse in fuzz_pbjson's table */
	len = 1 + dsrlb__lbd_response__pack(&r, buf + 1);
	put("pbjson", "lbd-response", buf, len);
	vs.node = "lb1";
	vr.ok = 1;
	vr.status = &vs;
	buf[0] = 12;    /* VrrpResponse */
	len = 1 + dsrlb__vrrp_response__pack(&vr, buf + 1);
	put("pbjson", "vrrp-response", buf, len);
	hb.node = "lb2";
	hb.n_vips = 1;
	hb.vips = vips;
	hb.sync_state = "\xff\xfe invalid utf-8";
	buf[0] = 14;    /* Heartbeat */
	len = 1 + dsrlb__heartbeat__pack(&hb, buf + 1);
	put("pbjson", "heartbeat", buf, len);
}

static void gen_configs(void)
{
	static const char example[] =
		"[cluster]\ninterface = eth0\nkey_file = /etc/dsrlb/cluster.key\nadvert_interval = 100ms\n\n"
		"[node lb1]\naddress = 192.0.2.11\npriority = 150 ; comment\n\n"
		"[node lb2]\naddress = 192.0.2.12\npriority = 100\n\n"
		"[service web]\nvip = 192.0.2.100\nport = 80\nprotocol = tcp\nbackend = 192.0.2.21\n"
		"backend = 192.0.2.22 weight=2   # comment\nbackend = 192.0.2.23\n";
	static const char every[] =
		"[cluster]\ninterface = eth0\nkey_file = /etc/dsrlb/a.key\nkey_file = /etc/dsrlb/b.key\n"
		"advert_interval = 5ms\npreempt = no\npreempt_delay = 2s\ngarp_count = 3\ngarp_repeat = 1s\n"
		"garp_refresh = 0\nfence_timeout = 1s\nlbd_timeout = 500ms\nstop_timeout = 3s\n"
		"heartbeat_port = 1112\nsync_port = 1113\nmulticast = 224.0.0.18\nrealtime = yes\nsync = yes\n"
		"kernel_drop = yes\nsync_timeout = 10s\nsync_peer_timeout = 3s\nflow_max = 4096\nworkers = 2\n"
		"rx_ring_version = 2\ntcp_established_timeout = 15m\ntcp_syn_timeout = 1m\ntcp_fin_timeout = 2m\n"
		"udp_timeout = 30s\narp_refresh = 1s\nnotify_master = /usr/bin/logger master\n"
		"notify_backup = /usr/bin/logger backup\nnotify_fault = /usr/bin/logger fault\nnotify_timeout = 5s\n"
		"[node a]\naddress = 10.0.0.1\npriority = 254\n[node b]\naddress = 10.0.0.2\npriority = 1\n"
		"[service s1]\nvip = 10.0.1.1\nport = 443\nprotocol = tcp\nbackend = 10.0.2.1 weight=0\n"
		"backend = 10.0.2.2\ncheck = http\ncheck_interval = 1s\ncheck_timeout = 200ms\nrise = 2\nfall = 3\n"
		"check_path = /health\ncheck_status = 204\ncheck_host = example.org\non_backend_down = keep\n"
		"sorry_backend = 10.0.2.9\n"
		"[service s2]\nvip = 10.0.1.1\nport = 53\nprotocol = udp\nbackend = 10.0.2.3\ncheck = none\n";
	static const char hostile[] =
		"[cluster\ninterface = ../../etc\nkey_file = relative\nadvert_interval = 99999999999999h\n"
		"[node lb1]\naddress = 255.255.255.255\npriority = 0\n[node lb1]\n[service]\nvip =\n"
		"port = -1\nbackend = 1.2.3.4 weight=99999999999\n\0after-nul\n";

	put("config", "example", example, sizeof(example) - 1);
	put("config", "every-keyword", every, sizeof(every) - 1);
	put("config", "hostile", hostile, sizeof(hostile) - 1);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	gen_frames();
	gen_frames6();
	gen_fwd6();
	gen_heartbeats();
	gen_sync();
	gen_ctl();
	gen_pbjson();
	gen_configs();
	return 0;
}
