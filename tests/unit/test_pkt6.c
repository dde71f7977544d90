/* Unit tests for the IPv6 half of lbd/pkt.c: extension-header chains of every kind and every way they go
 * wrong, fragments, payload length against the frame, TCP/UDP ports, ICMPv6 errors with their quoted
 * packet, echo, Neighbour Solicitations and Advertisements valid and invalid, and the NS/NA builders.
 * Every frame is also cut at every byte, by the captured length and by the payload length, each time
 * parsed from a heap copy of exactly its length so ASan catches any read past the end. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lbd/pkt.h"
#include "pkt_frames.h"

#define CLIENT "2001:db8:1::7"
#define VIP "2001:db8::100"
#define ROUTER "2001:db8::1"
#define LBD "2001:db8::11"
#define BACKEND "2001:db8::21"
#define FRAG_ID 0xdeadbeefu
#define LATER (185 << 3)        /* fragment offset 185 (1480 bytes), M clear */

static const uint8_t backend_mac[6] = { 0x02, 0, 0, 0, 0, 0x21 };

static struct ipaddr addr(const char *s)
{
	struct ipaddr a;

	assert_int_equal(ipaddr_parse(s, &a), 0);
	return a;
}

static void assert_addr(const struct ipaddr *a, const char *s)
{
	struct ipaddr want = addr(s);

	assert_true(ipaddr_eq(a, &want));
}

/* Writes a fixed IPv6 header (a traffic class and flow label the parser must ignore) and returns 40. */
static uint32_t ip6_hdr(uint8_t *ip, uint16_t plen, uint8_t nh, uint8_t hop, const char *src, const char *dst)
{
	struct ipaddr s = addr(src), d = addr(dst);

	ip[0] = 0x6a;
	ip[1] = 0xbc;
	ip[2] = 0xde;
	ip[3] = 0xf0;
	put16(ip + 4, plen);
	ip[6] = nh;
	ip[7] = hop;
	memcpy(ip + 8, s.b, 16);
	memcpy(ip + 24, d.b, 16);
	return 40;
}

/* Writes the extension headers types[0..n) at h, each naming the next and the last naming proto, and
 * returns their length: hop-by-hop options (8 bytes, PadN), destination options (16), a type 2 routing
 * header (24), a fragment header with offm as offset and M flag (8), AH with a 12-byte ICV (24). */
static uint32_t ext_hdrs(uint8_t *h, const uint8_t *types, size_t n, uint8_t proto, uint16_t offm)
{
	uint32_t off = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t *e = h + off;
		uint32_t len = types[i] == 0 || types[i] == 44 ? 8 : types[i] == 60 ? 16 : 24;

		memset(e, 0, len);
		switch (types[i]) {
		case 0:
		case 60:
			e[1] = (uint8_t)(len / 8 - 1);
			e[2] = 1;               /* PadN over the rest */
			e[3] = (uint8_t)(len - 4);
			break;
		case 43:
			e[1] = 2;
			e[2] = 2;               /* Mobile IPv6 type 2: one home address */
			e[3] = 1;
			memset(e + 8, 0x20, 16);
			break;
		case 44:
			put16(e + 2, offm);
			put32(e + 4, FRAG_ID);
			break;
		case 51:
			e[1] = 4;               /* (4 + 2) * 4 = 24 bytes */
			put32(e + 4, 0x1000);   /* SPI */
			put32(e + 8, 1);        /* sequence number */
			memset(e + 12, 0x5a, 12);
			break;
		default:
			fail_msg("extension %u", types[i]);
		}
		e[0] = i + 1 < n ? types[i + 1] : proto;
		off += len;
	}
	return off;
}

/* Writes an upper-layer header and a few payload bytes: TCP sport->dport (20 + 6 bytes, flags SYN|ACK),
 * UDP (8 + 4), an ICMPv6 echo request (8 + 16), anything else 16 bytes of 0x77. Returns its length. */
static uint32_t l4_hdr(uint8_t *l4, uint8_t proto, uint16_t sport, uint16_t dport)
{
	switch (proto) {
	case IPPROTO_TCP:
		tcp_hdr(l4, sport, dport, 0x12);
		memcpy(l4 + 20, "hello!", 6);
		return 26;
	case IPPROTO_UDP:
		udp_hdr(l4, sport, dport, 12);
		memcpy(l4 + 8, "abcd", 4);
		return 12;
	case IPPROTO_ICMPV6:
		memset(l4, 0, 8);
		l4[0] = 128;
		put16(l4 + 4, 0x4242);
		put16(l4 + 6, 1);
		memset(l4 + 8, 0xa5, 16);
		return 24;
	default:
		memset(l4, 0x77, 16);
		return 16;
	}
}

/* Ethernet + IPv6 from the client to the VIP + extension headers + upper layer; returns the frame length. */
static uint32_t mk6(uint8_t *b, const uint8_t *types, size_t n, uint8_t proto, uint16_t offm)
{
	uint8_t *ip = b + ETH;
	uint32_t x, l;

	eth_hdr(b, 0x86dd);
	x = ext_hdrs(ip + 40, types, n, proto, offm);
	l = l4_hdr(ip + 40 + x, proto, 40000, 443);
	ip6_hdr(ip, (uint16_t)(x + l), n ? types[0] : proto, 64, CLIENT, VIP);
	return ETH + 40 + x + l;
}

/* The ICMPv6 checksum of len bytes at m sent under the IPv6 header ip, the long way: the RFC 8200 8.1
 * pseudo-header and the message in one buffer through pkt_csum (RFC 1071, tested in test_pkt.c). */
static uint16_t ref_csum6(const uint8_t *ip, const uint8_t *m, uint32_t len)
{
	uint8_t *buf = calloc(1, 40 + len);
	uint16_t c;

	assert_non_null(buf);
	memcpy(buf, ip + 8, 32);
	put32(buf + 32, len);
	buf[39] = IPPROTO_ICMPV6;
	memcpy(buf + 40, m, len);
	c = pkt_csum(buf, 40 + len);
	free(buf);
	return c;
}

static void set_csum6(const uint8_t *ip, uint8_t *m, uint32_t len)
{
	uint16_t c;

	m[2] = m[3] = 0;
	c = ref_csum6(ip, m, len);
	memcpy(m + 2, &c, 2);
}

/* An ICMPv6 error of type from the router to the VIP, quoting the backend's reply VIP:443 -> CLIENT:40000
 * (proto, with the extension headers types[0..n)) of a 1400-byte payload. Returns the frame length. */
static uint32_t mk_err(uint8_t *b, uint8_t type, const uint8_t *types, size_t n, uint8_t proto, uint16_t offm)
{
	uint8_t *ip = b + ETH, *m = ip + 40, *q = m + 8;
	uint32_t x, l;

	eth_hdr(b, 0x86dd);
	x = ext_hdrs(q + 40, types, n, proto, offm);
	l = l4_hdr(q + 40 + x, proto, 443, 40000);
	ip6_hdr(q, 1400, n ? types[0] : proto, 63, VIP, CLIENT);
	memset(m, 0, 8);
	m[0] = type;
	put32(m + 4, 1280);
	ip6_hdr(ip, (uint16_t)(8 + 40 + x + l), IPPROTO_ICMPV6, 64, ROUTER, VIP);
	set_csum6(ip, m, 8 + 40 + x + l);
	return ETH + 40 + 8 + 40 + x + l;
}

/* A Neighbour Solicitation (135) or Advertisement (136) from src to dst about target with hop limit hop,
 * the flags byte and the options opts (olen bytes), checksum right. Returns the frame length. */
static uint32_t mk_nd(uint8_t *b, uint8_t type, const char *src, const char *dst, uint8_t hop, const char *target,
		      uint8_t flags, const uint8_t *opts, uint32_t olen)
{
	uint8_t *ip = b + ETH, *m = ip + 40;
	struct ipaddr t = addr(target);

	eth_hdr(b, 0x86dd);
	ip6_hdr(ip, (uint16_t)(24 + olen), IPPROTO_ICMPV6, hop, src, dst);
	memset(m, 0, 24);
	m[0] = type;
	m[4] = flags;
	memcpy(m + 8, t.b, 16);
	if (olen)
		memcpy(m + 24, opts, olen);
	set_csum6(ip, m, 24 + olen);
	return ETH + 40 + 24 + olen;
}

/* What a frame gives when its payload length is cut short: the chain is whole from ihl bytes of the IP
 * packet on (0: the chain is bad, so no cut is PKT_OK with ports); need more bytes make the upper layer
 * whole; a first fragment is PKT_OK without them; inner: ICMPv6 bytes from which the quote names a flow. */
struct cut_want {
	uint32_t ihl, need;
	uint8_t frag;
	uint32_t inner;
};

/* Every captured length short of the frame: too short for the fixed header, or shorter than its payload
 * length. Then every payload length short of the frame's, once with the frame cut there and once with the
 * rest of the bytes left behind as Ethernet padding: both parse alike, and never past the cut. */
static void check_cuts(const uint8_t *b, uint32_t full, const struct cut_want *w)
{
	uint32_t plen = full - ETH - 40;
	uint8_t *c = malloc(full);
	struct pkt p, q;

	for (uint32_t len = 0; len < full; len++) {
		enum pkt_err e = parse_exact(b, len, &p);
		assert_int_equal(e, len < ETH + 40 ? PKT_TRUNCATED : PKT_BAD_LEN);
		assert_int_equal(p.kind, len < ETH ? PKT_OTHER : PKT_IPV6);
		assert_false(p.have_ports);
		assert_false(p.have_inner);
		assert_false(p.nd_valid);
	}
	assert_non_null(c);
	memcpy(c, b, full);
	for (uint32_t cut = 0; cut < plen; cut++) {
		uint32_t l4 = 40 + cut >= w->ihl ? 40 + cut - w->ihl : 0;
		enum pkt_err e, e2;

		put16(c + ETH + 4, (uint16_t)cut);
		e = parse_exact(c, ETH + 40 + cut, &p);
		e2 = parse_exact(c, full, &q);
		assert_int_equal(e, e2);
		assert_int_equal(p.have_ports, q.have_ports);
		assert_int_equal(p.have_inner, q.have_inner);
		assert_int_equal(p.ihl, q.ihl);
		assert_false(p.nd_valid);       /* a cut message fails its checksum, if nothing else */
		if (cut == 0) {
			assert_int_equal(e, PKT_BAD_LEN);   /* a jumbogram's payload length */
		} else if (w->ihl == 0) {
			assert_true(e == PKT_TRUNCATED || e == PKT_BAD_EXT);
			assert_false(p.have_ports);
		} else if (40 + cut < w->ihl) {
			assert_int_equal(e, PKT_TRUNCATED);
			assert_false(p.have_ports);
		} else if (l4 < w->need) {
			assert_int_equal(e, w->frag ? PKT_OK : PKT_TRUNCATED);
			assert_false(p.have_ports);
		} else {
			assert_int_equal(e, PKT_OK);
			assert_int_equal(p.ihl, w->ihl);
			assert_int_equal(p.have_ports, p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP);
			assert_int_equal(p.have_inner, w->inner && l4 >= w->inner);
		}
	}
	free(c);
}

/* TCP: ports, flags, ihl 40 + extensions, and the cuts. */
static void check_tcp(const uint8_t *b, uint32_t full, uint32_t ihl)
{
	const struct cut_want w = { .ihl = ihl, .need = 14 };
	struct pkt p;

	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.kind, PKT_IPV6);
	assert_int_equal(p.ethertype, 0x86dd);
	assert_addr(&p.src, CLIENT);
	assert_addr(&p.dst, VIP);
	assert_int_equal(p.hop_limit, 64);
	assert_int_equal(p.ihl, ihl);
	assert_int_equal(p.ip_len, full - ETH);
	assert_tcp_segment(&p);
	check_cuts(b, full, &w);
}

static void test_tcp(void **state)
{
	uint8_t b[256];
	uint32_t full = mk6(b, NULL, 0, IPPROTO_TCP, 0);
	struct pkt p;

	assert_int_equal(full, ETH + 40 + 26);
	check_tcp(b, full, 40);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.frag_id, 0);
	assert_true(ipaddr_is_none(&p.in_src));
}

static void test_udp(void **state)
{
	const struct cut_want w = { .ihl = 40, .need = 8 };
	uint8_t b[256];
	uint32_t full = mk6(b, NULL, 0, IPPROTO_UDP, 0);
	struct pkt p;

	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.proto, IPPROTO_UDP);
	assert_int_equal(p.ihl, 40);
	assert_int_equal(p.ip_len, 40 + 12);
	assert_true(p.have_ports);
	assert_int_equal(p.sport, htons(40000));
	assert_int_equal(p.dport, htons(443));
	assert_int_equal(p.tcp_flags, 0);
	check_cuts(b, full, &w);
}

/* Each extension header alone, before TCP and before UDP. */
static void test_each_extension(void **state)
{
	static const struct {
		uint8_t type;
		uint32_t len;
	} ext[] = { { 0, 8 }, { 43, 24 }, { 60, 16 }, { 44, 8 }, { 51, 24 } };
	const struct cut_want w_udp_base = { .need = 8 };
	uint8_t b[256];
	struct pkt p;

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		struct cut_want w = w_udp_base;
		uint32_t full = mk6(b, &ext[i].type, 1, IPPROTO_TCP, 0);

		check_tcp(b, full, 40 + ext[i].len);
		full = mk6(b, &ext[i].type, 1, IPPROTO_UDP, 0);
		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_int_equal(p.proto, IPPROTO_UDP);
		assert_int_equal(p.ihl, 40 + ext[i].len);
		assert_true(p.have_ports);
		assert_int_equal(p.dport, htons(443));
		w.ihl = 40 + ext[i].len;
		check_cuts(b, full, &w);
	}
}

/* Chains of several, up to the 8 the parser walks; a ninth is refused. */
static void test_chains(void **state)
{
	static const uint8_t c1[] = { 0, 60, 43, 44, 51, 60 };
	static const uint8_t c2[] = { 0, 43, 60 };
	static const uint8_t c3[] = { 60, 43, 51 };
	static const uint8_t c8[] = { 0, 60, 43, 60, 43, 51, 44, 60 };
	static const uint8_t c9[] = { 0, 60, 43, 60, 43, 51, 44, 60, 60 };
	static const struct cut_want bad = { 0 };
	uint8_t b[512];
	uint32_t full;
	struct pkt p;

	check_tcp(b, mk6(b, c1, sizeof(c1), IPPROTO_TCP, 0), 40 + 8 + 16 + 24 + 8 + 24 + 16);
	check_tcp(b, mk6(b, c2, sizeof(c2), IPPROTO_TCP, 0), 40 + 8 + 24 + 16);
	check_tcp(b, mk6(b, c3, sizeof(c3), IPPROTO_TCP, 0), 40 + 16 + 24 + 24);
	check_tcp(b, mk6(b, c8, sizeof(c8), IPPROTO_TCP, 0), 40 + 8 + 16 + 24 + 16 + 24 + 24 + 8 + 16);
	full = mk6(b, c9, sizeof(c9), IPPROTO_TCP, 0);
	assert_int_equal(parse_exact(b, full, &p), PKT_BAD_EXT);
	assert_int_equal(p.kind, PKT_IPV6);
	assert_false(p.have_ports);
	check_cuts(b, full, &bad);
	/* The ninth refused before it is read: a chain announcing a ninth header that is not there. */
	full = mk6(b, c8, sizeof(c8), 60, 0);
	assert_int_equal(parse_exact(b, full, &p), PKT_BAD_EXT);
}

/* Hop-by-hop options only directly after the fixed header (RFC 8200 section 4.1). */
static void test_hop_by_hop_not_first(void **state)
{
	static const uint8_t chains[][3] = { { 60, 0, 60 }, { 43, 0, 60 }, { 0, 0, 60 }, { 44, 60, 0 } };
	static const struct cut_want bad = { 0 };
	uint8_t b[256];
	struct pkt p;

	for (size_t i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
		uint32_t full = mk6(b, chains[i], 3, IPPROTO_TCP, 0);
		assert_int_equal(parse_exact(b, full, &p), PKT_BAD_EXT);
		assert_false(p.have_ports);
		check_cuts(b, full, &bad);
	}
}

/* Routing type 0 is deprecated (RFC 5095); the others pass, segments left or not. */
static void test_routing_types(void **state)
{
	static const uint8_t rt = 43, chain[] = { 0, 43 };
	static const struct cut_want bad = { 0 };
	uint8_t b[256];
	uint32_t full;
	struct pkt p;

	for (unsigned type = 0; type < 256; type++) {
		full = mk6(b, &rt, 1, IPPROTO_TCP, 0);
		b[ETH + 40 + 2] = (uint8_t)type;
		assert_int_equal(parse_exact(b, full, &p), type == 0 ? PKT_BAD_EXT : PKT_OK);
		assert_int_equal(p.have_ports, type != 0);
	}
	full = mk6(b, &rt, 1, IPPROTO_TCP, 0);
	b[ETH + 40 + 2] = 0;
	check_cuts(b, full, &bad);
	full = mk6(b, chain, 2, IPPROTO_UDP, 0);
	b[ETH + 48 + 2] = 0;
	b[ETH + 48 + 3] = 0;                    /* segments left 0 does not make type 0 fine */
	assert_int_equal(parse_exact(b, full, &p), PKT_BAD_EXT);
	check_cuts(b, full, &bad);
}

/* AH's length is in 4-byte words minus 2, and in IPv6 a multiple of 8 bytes of at least 16. */
static void test_ah(void **state)
{
	static const uint8_t ah = 51;
	const struct cut_want bad = { 0 };
	uint8_t b[256];
	uint32_t full;
	struct pkt p;

	full = mk6(b, &ah, 1, IPPROTO_TCP, 0);
	check_tcp(b, full, 40 + 24);
	for (uint8_t len = 0; len < 5; len++) {
		b[ETH + 41] = len;
		assert_int_equal(parse_exact(b, full, &p), len == 2 ? PKT_OK : len == 4 ? PKT_OK : PKT_BAD_EXT);
		if (len == 2) {
			/* 16 bytes of AH: the rest of the ICV is read as TCP. */
			assert_int_equal(p.ihl, 40 + 16);
			assert_int_equal(p.proto, IPPROTO_TCP);
		}
	}
	b[ETH + 41] = 3;
	check_cuts(b, full, &bad);
	/* A length beyond the packet. */
	b[ETH + 41] = 200;
	assert_int_equal(parse_exact(b, full, &p), PKT_TRUNCATED);
}

/* Extension lengths that run past the payload, and chains cut inside a header. */
static void test_ext_past_payload(void **state)
{
	static const uint8_t types[] = { 0, 60, 43 };
	uint8_t b[256];
	struct pkt p;

	for (size_t i = 0; i < sizeof(types); i++) {
		uint32_t full = mk6(b, &types[i], 1, IPPROTO_TCP, 0);
		for (unsigned len = 4; len < 256; len++) {
			b[ETH + 41] = (uint8_t)len;
			assert_int_equal(parse_exact(b, full, &p), PKT_TRUNCATED);
			/* Padding does not stand in for the rest of the header. */
			assert_int_equal(parse_exact(b, sizeof(b), &p), PKT_TRUNCATED);
		}
	}
}

/* Fragment header: first, later and atomic fragments (RFC 8200 section 4.5, RFC 6946). */
static void test_fragments(void **state)
{
	static const uint8_t fh = 44, fh_dst[] = { 44, 60 }, two[] = { 44, 44 };
	static const uint16_t later[] = { LATER, LATER | 1, 8, 0xfff8, 0xfff9, LATER | 6, LATER | 7 };
	static const struct cut_want bad = { 0 };
	uint8_t b[256];
	uint32_t full;
	struct pkt p;

	/* First fragment: M set, offset 0, ports present. */
	full = mk6(b, &fh, 1, IPPROTO_TCP, 1);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_true(p.frag);
	assert_false(p.later_frag);
	assert_int_equal(p.frag_id, htonl(FRAG_ID));
	assert_int_equal(p.ihl, 48);
	assert_true(p.have_ports);
	assert_int_equal(p.dport, htons(443));
	assert_int_equal(p.frag_proto, IPPROTO_TCP);
	{
		const struct cut_want w = { .ihl = 48, .need = 14, .frag = 1 };
		check_cuts(b, full, &w);
	}
	/* A first fragment with more extension headers after the fragment header. */
	full = mk6(b, fh_dst, 2, IPPROTO_UDP, 1);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_true(p.frag);
	assert_int_equal(p.ihl, 64);
	assert_true(p.have_ports);
	/* Its later fragments name only the options header: that is what keys the datagram. */
	assert_int_equal(p.proto, IPPROTO_UDP);
	assert_int_equal(p.frag_proto, 60);
	{
		const struct cut_want w = { .ihl = 64, .need = 8, .frag = 1 };
		check_cuts(b, full, &w);
	}

	/* Later fragments: no ports, whatever the bytes; the chain behind the fragment header is not walked. */
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		const struct cut_want w = { .ihl = 48 };
		full = mk6(b, fh_dst, 2, IPPROTO_TCP, later[i]);
		b[ETH + 48 + 1] = 0xff;         /* a destination-options length far past the packet */
		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_true(p.frag);
		assert_true(p.later_frag);
		assert_int_equal(p.proto, 60);
		assert_int_equal(p.frag_proto, 60);
		assert_int_equal(p.ihl, 48);
		assert_int_equal(p.frag_id, htonl(FRAG_ID));
		assert_false(p.have_ports);
		assert_int_equal(p.sport, 0);
		assert_int_equal(p.tcp_flags, 0);
		assert_addr(&p.src, CLIENT);
		check_cuts(b, full, &w);
	}

	/* Atomic fragment: offset 0, M clear, is not a fragment; reserved bits do not matter. */
	full = mk6(b, &fh, 1, IPPROTO_TCP, 0x0006);
	b[ETH + 41] = 0xff;
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.frag);
	assert_false(p.later_frag);
	assert_int_equal(p.frag_proto, 0);
	assert_int_equal(p.frag_id, htonl(FRAG_ID));
	assert_true(p.have_ports);
	check_tcp(b, full, 48);

	/* Two fragment headers. */
	full = mk6(b, two, 2, IPPROTO_TCP, 1);
	assert_int_equal(parse_exact(b, full, &p), PKT_BAD_EXT);
	check_cuts(b, full, &bad);
}

/* Payload length 0 is a jumbogram (RFC 2675), with or without its hop-by-hop option. */
static void test_jumbogram(void **state)
{
	static const uint8_t hbh = 0;
	uint8_t b[256];
	uint32_t full;
	struct pkt p;

	full = mk6(b, NULL, 0, IPPROTO_TCP, 0);
	put16(b + ETH + 4, 0);
	assert_int_equal(parse_exact(b, full, &p), PKT_BAD_LEN);
	assert_false(p.have_ports);
	full = mk6(b, &hbh, 1, IPPROTO_TCP, 0);
	b[ETH + 42] = 0xc2;                     /* Jumbo Payload option */
	b[ETH + 43] = 4;
	put32(b + ETH + 44, full - ETH - 40);
	put16(b + ETH + 4, 0);
	assert_int_equal(parse_exact(b, full, &p), PKT_BAD_LEN);
	assert_false(p.have_ports);
}

/* Frames may be longer than the packet (Ethernet padding), never shorter. */
static void test_padding_and_length(void **state)
{
	uint8_t b[256];
	uint8_t *big;
	uint32_t full;
	struct pkt p;

	memset(b, 0xee, sizeof(b));
	full = mk6(b, NULL, 0, IPPROTO_UDP, 0);
	assert_int_equal(parse_exact(b, sizeof(b), &p), PKT_OK);
	assert_int_equal(p.ip_len, full - ETH);
	assert_int_equal(p.dport, htons(443));
	for (uint32_t extra = 1; full + extra <= sizeof(b); extra++) {
		put16(b + ETH + 4, (uint16_t)(full - ETH - 40 + extra));
		assert_int_equal(parse_exact(b, full + extra - 1, &p), PKT_BAD_LEN);
		assert_int_equal(parse_exact(b, full + extra, &p), PKT_OK);
	}
	/* Padding does not stand in for the TCP header the payload length leaves out. */
	full = mk6(b, NULL, 0, IPPROTO_TCP, 0);
	put16(b + ETH + 4, 8);
	assert_int_equal(parse_exact(b, sizeof(b), &p), PKT_TRUNCATED);
	assert_false(p.have_ports);
	put16(b + ETH + 4, 0xffff);
	assert_int_equal(parse_exact(b, sizeof(b), &p), PKT_BAD_LEN);

	/* The largest packet whose length fits ip_len, and one byte more. */
	big = calloc(1, ETH + 40 + 65535);
	assert_non_null(big);
	memcpy(big, b, ETH + 40);
	big[ETH + 6] = IPPROTO_UDP;
	udp_hdr(big + ETH + 40, 53, 53, 0);
	put16(big + ETH + 4, 65535 - 40);
	assert_int_equal(parse_exact(big, ETH + 40 + 65535, &p), PKT_OK);
	assert_int_equal(p.ip_len, 65535);
	assert_true(p.have_ports);
	put16(big + ETH + 4, 65535 - 39);
	assert_int_equal(parse_exact(big, ETH + 40 + 65535, &p), PKT_BAD_LEN);
	put16(big + ETH + 4, 65535);
	assert_int_equal(parse_exact(big, ETH + 40 + 65535, &p), PKT_BAD_LEN);
	free(big);
}

static void test_bad_version(void **state)
{
	static const uint8_t versions[] = { 0, 4, 5, 7, 15 };
	uint8_t b[256];
	uint32_t full = mk6(b, NULL, 0, IPPROTO_TCP, 0);
	struct pkt p;

	for (size_t i = 0; i < sizeof(versions); i++) {
		b[ETH] = (uint8_t)(versions[i] << 4);
		assert_int_equal(parse_exact(b, full, &p), PKT_BAD_VERSION);
		assert_int_equal(p.kind, PKT_IPV6);
		assert_false(p.have_ports);
		for (uint32_t len = 0; len < full; len++)
			assert_int_equal(parse_exact(b, len, &p), len < ETH + 40 ? PKT_TRUNCATED : PKT_BAD_VERSION);
	}
}

/* ESP, No Next Header and values that are no extension header end the chain: no ports, OK. */
static void test_other_upper_layers(void **state)
{
	static const uint8_t protos[] = { 50, 59, 47, 132, 255 };
	static const uint8_t chain[] = { 0, 60 };
	const struct cut_want w = { .ihl = 40 + 24 };
	uint8_t b[256];
	struct pkt p;

	for (size_t i = 0; i < sizeof(protos); i++) {
		uint32_t full = mk6(b, chain, 2, protos[i], 0);
		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_int_equal(p.proto, protos[i]);
		assert_int_equal(p.ihl, 40 + 24);
		assert_false(p.have_ports);
		check_cuts(b, full, &w);
	}
}

/* Extension headers lbd does not walk (Mobility, HIP, Shim6, experimental): the chain is refused. */
static void test_unwalked_extensions(void **state)
{
	static const uint8_t protos[] = { 135, 139, 140, 253, 254 };
	static const uint8_t chain[] = { 0, 60 };
	uint8_t b[256];
	struct pkt p;

	for (size_t i = 0; i < sizeof(protos); i++) {
		uint32_t full = mk6(b, chain, 2, protos[i], 0);
		assert_int_equal(parse_exact(b, full, &p), PKT_BAD_EXT);
	}
}

static void test_echo(void **state)
{
	const struct cut_want w = { .ihl = 40, .need = 8 };
	uint8_t b[256];
	uint32_t full = mk6(b, NULL, 0, IPPROTO_ICMPV6, 0);
	struct pkt p;

	set_csum6(b + ETH, b + ETH + 40, full - ETH - 40);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.proto, IPPROTO_ICMPV6);
	assert_int_equal(p.icmp_type, 128);
	assert_int_equal(p.icmp_code, 0);
	assert_false(p.have_ports);
	assert_false(p.have_inner);
	assert_false(p.nd_valid);
	check_cuts(b, full, &w);
	b[ETH + 40] = 129;
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.icmp_type, 129);
	assert_false(p.have_inner);
}

/* ICMPv6 errors route by the flow they quote: Packet Too Big first of all. */
static void test_error_quotes(void **state)
{
	static const uint8_t c2[] = { 0, 60 }, c3[] = { 0, 43, 60 }, fh = 44;
	static const struct {
		const uint8_t *types;
		size_t n;
		uint8_t proto;
		uint32_t ext;
	} ok[] = {
		{ NULL, 0, IPPROTO_TCP, 0 },
		{ c2, 2, IPPROTO_TCP, 24 },
		{ c3, 3, IPPROTO_TCP, 48 },
		{ &fh, 1, IPPROTO_TCP, 8 },     /* a first fragment quotes its ports */
		{ NULL, 0, IPPROTO_UDP, 0 },
		{ c2, 2, IPPROTO_UDP, 24 },
	};
	uint8_t b[512];
	struct pkt p;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		const struct cut_want w = { .ihl = 40, .need = 8, .inner = 8 + 40 + ok[i].ext + 8 };
		uint32_t full = mk_err(b, 2, ok[i].types, ok[i].n, ok[i].proto, 1);

		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_addr(&p.src, ROUTER);
		assert_int_equal(p.proto, IPPROTO_ICMPV6);
		assert_int_equal(p.icmp_type, 2);
		assert_false(p.have_ports);
		assert_true(p.have_inner);
		assert_int_equal(p.in_proto, ok[i].proto);
		assert_addr(&p.in_src, VIP);
		assert_addr(&p.in_dst, CLIENT);
		assert_int_equal(p.in_sport, htons(443));
		assert_int_equal(p.in_dport, htons(40000));
		check_cuts(b, full, &w);
		/* Every error type quotes; echo, NDP and unknown types do not. */
		for (unsigned type = 0; type < 256; type++) {
			b[ETH + 40] = (uint8_t)type;
			assert_int_equal(parse_exact(b, full, &p), PKT_OK);
			assert_int_equal(p.have_inner, type >= 1 && type <= 4);
			assert_false(p.nd_valid);
		}
	}
}

static void test_error_quotes_rejected(void **state)
{
	static const uint8_t fh = 44, rt = 43, bad_hbh[] = { 60, 0 };
	static const uint8_t c9[] = { 0, 60, 43, 60, 43, 51, 44, 60, 60 };
	uint8_t b[512];
	uint32_t full;
	struct pkt p;

	/* A later fragment quotes no ports. */
	full = mk_err(b, 2, &fh, 1, IPPROTO_TCP, LATER);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.icmp_type, 2);
	assert_false(p.have_inner);
	/* Neither TCP nor UDP. */
	full = mk_err(b, 1, NULL, 0, IPPROTO_ICMPV6, 0);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	full = mk_err(b, 1, NULL, 0, 50, 0);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	/* Quoted chains the parser refuses in a packet of its own. */
	full = mk_err(b, 3, &rt, 1, IPPROTO_TCP, 0);
	b[ETH + 48 + 40 + 2] = 0;
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	full = mk_err(b, 3, bad_hbh, 2, IPPROTO_TCP, 0);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	full = mk_err(b, 3, c9, sizeof(c9), IPPROTO_TCP, 0);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	/* A quoted extension header longer than the quote. */
	full = mk_err(b, 2, &rt, 1, IPPROTO_TCP, 0);
	b[ETH + 48 + 41] = 30;
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	/* A quoted IPv4 header in an ICMPv6 error, or any other version. */
	full = mk_err(b, 2, NULL, 0, IPPROTO_TCP, 0);
	for (unsigned v = 0; v < 16; v++) {
		b[ETH + 48] = (uint8_t)(v << 4);
		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_int_equal(p.have_inner, v == 6);
	}
}

/* ---- neighbour discovery ---- */

static const uint8_t slla[8] = { 1, 1, 0x02, 0, 0, 0, 0, 0x21 };
static const uint8_t tlla[8] = { 2, 1, 0x02, 0, 0, 0, 0, 0x21 };

/* Parses a heap copy that stays alive, so nd_lladdr can be followed; the caller frees *copy. */
static enum pkt_err parse_kept(const uint8_t *b, uint32_t len, struct pkt *p, uint8_t **copy)
{
	enum pkt_err e;

	*copy = malloc(len);
	assert_non_null(*copy);
	memcpy(*copy, b, len);
	e = pkt_parse(*copy, len, p);
	check_consistent(e, p, *copy, len);
	return e;
}

/* A valid NS or NA: nd fields as expected (lladdr the backend's MAC or none), then the cuts. */
static void check_nd_valid(const uint8_t *b, uint32_t full, const char *target, uint8_t flags, int lladdr)
{
	struct cut_want w = { .need = 8 };
	uint8_t *copy;
	struct pkt p;

	assert_int_equal(parse_kept(b, full, &p, &copy), PKT_OK);
	assert_int_equal(p.kind, PKT_IPV6);
	assert_int_equal(p.proto, IPPROTO_ICMPV6);
	assert_int_equal(p.icmp_type, b[ETH + p.ihl]);
	w.ihl = p.ihl;
	assert_true(p.nd_valid);
	assert_addr(&p.nd_target, target);
	assert_int_equal(p.nd_flags, flags);
	if (lladdr) {
		assert_non_null(p.nd_lladdr);
		assert_memory_equal(p.nd_lladdr, backend_mac, 6);
	} else {
		assert_null(p.nd_lladdr);
	}
	free(copy);
	check_cuts(b, full, &w);
}

static void check_nd_invalid(const uint8_t *b, uint32_t full)
{
	const struct cut_want w = { .ihl = 40, .need = 8 };
	struct pkt p;

	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.kind, PKT_IPV6);
	assert_int_equal(p.proto, IPPROTO_ICMPV6);
	assert_true(p.icmp_type == 135 || p.icmp_type == 136);
	assert_false(p.nd_valid);
	assert_null(p.nd_lladdr);
	check_cuts(b, full, &w);
}

/* An NS or NA behind one extension header (ext, with offm if a fragment header), with the link-layer
 * address option ll; returns the frame length. */
static uint32_t mk_nd_ext(uint8_t *b, uint8_t type, uint8_t ext, uint16_t offm, const uint8_t *ll)
{
	uint32_t full = mk6(b, &ext, 1, IPPROTO_ICMPV6, offm);
	uint32_t x = full - ETH - 40 - 24;      /* mk6 wrote an echo request of 24 bytes */
	uint8_t *m = b + ETH + 40 + x;

	b[ETH + 7] = 255;
	memset(m, 0, 32);
	m[0] = type;
	memcpy(m + 8, addr(VIP).b, 16);
	memcpy(m + 24, ll, 8);
	put16(b + ETH + 4, (uint16_t)(x + 32));
	set_csum6(b + ETH, m, 32);
	return ETH + 40 + x + 32;
}

static void test_nd_valid(void **state)
{
	static const uint8_t nonce_first[32] = { 14, 1, [8] = 200, [9] = 2, [24] = 1, 1, 2, 0, 0, 0, 0, 0x21 };
	static const uint8_t two_slla[16] = { 1, 1, 2, 0, 0, 0, 0, 0x21, 1, 1, 2, 0, 0, 0, 0x99, 0x21 };
	static const uint8_t slla16[16] = { 1, 2, 2, 0, 0, 0, 0, 0x21 };
	static const struct {
		uint8_t type;
		const char *src, *dst, *target;
		uint8_t flags;
		const uint8_t *opts;
		uint32_t olen;
		uint8_t want_flags;
		int lladdr;
	} valid[] = {
		/* NS, address resolution: to the solicited-node address, with the source link-layer address. */
		{ 135, BACKEND, "ff02::1:ff00:100", VIP, 0, slla, 8, 0, 1 },
		/* NS, unreachability detection: unicast, no option. */
		{ 135, BACKEND, VIP, VIP, 0, NULL, 0, 0, 0 },
		/* NS: reserved bits are ignored, and not reported as flags. */
		{ 135, BACKEND, VIP, VIP, 0xff, slla, 8, 0, 1 },
		/* NS, duplicate address detection: from ::, no option, to the solicited-node address. */
		{ 135, "::", "ff02::1:ff00:100", VIP, 0, NULL, 0, 0, 0 },
		/* Other options first (8 and 16 bytes), then the address; of two, the first counts. */
		{ 135, BACKEND, VIP, VIP, 0, nonce_first, 32, 0, 1 },
		{ 135, BACKEND, VIP, VIP, 0, two_slla, 16, 0, 1 },
		/* A link-layer address not 6 bytes long (another link type) is not one to use. */
		{ 135, BACKEND, VIP, VIP, 0, slla16, 16, 0, 0 },
		/* NA, solicited, override, from a router: the flags byte as it is. */
		{ 136, BACKEND, LBD, BACKEND, 0xe0, tlla, 8, 0xe0, 1 },
		/* NA, unsolicited to all nodes: S clear. */
		{ 136, BACKEND, "ff02::1", BACKEND, 0x20, tlla, 8, 0x20, 1 },
		/* NA with no option, or only a source link-layer address, which an advertisement does not use. */
		{ 136, BACKEND, LBD, BACKEND, 0x40, NULL, 0, 0x40, 0 },
		{ 136, BACKEND, LBD, BACKEND, 0x40, slla, 8, 0x40, 0 },
		/* NA: reserved bits after the flags do not matter. */
		{ 136, BACKEND, LBD, BACKEND, 0x7f, tlla, 8, 0x7f, 1 },
	};
	uint8_t b[256];
	uint32_t full;
	struct pkt p;

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		full = mk_nd(b, valid[i].type, valid[i].src, valid[i].dst, 255, valid[i].target, valid[i].flags,
			     valid[i].opts, valid[i].olen);
		check_nd_valid(b, full, valid[i].target, valid[i].want_flags, valid[i].lladdr);
	}
	/* An extension header before the message is no reason to refuse it. */
	full = mk_nd_ext(b, 135, 0, 0, slla);
	check_nd_valid(b, full, VIP, 0, 1);
	full = mk_nd_ext(b, 136, 60, 0, tlla);
	check_nd_valid(b, full, VIP, 0, 1);
	/* An advertisement padded to a longer frame: the padding holds no option. */
	memset(b, 0xee, sizeof(b));
	mk_nd(b, 136, BACKEND, LBD, 255, BACKEND, 0x60, NULL, 0);
	assert_int_equal(parse_exact(b, sizeof(b), &p), PKT_OK);
	assert_true(p.nd_valid);
	assert_null(p.nd_lladdr);
}

/* Each check of RFC 4861 7.1.1 / 7.1.2 (and RFC 6980) alone makes a message invalid. */
static void test_nd_invalid(void **state)
{
	static const uint8_t bad_opt_len0[16] = { 14, 0, 1, 2, 3, 4, 5, 6, 1, 1, 2, 0, 0, 0, 0, 0x21 };
	static const uint8_t past_end[8] = { 14, 2, 0, 0, 0, 0, 0, 0 };
	static const uint8_t short_tail[12] = { 1, 1, 2, 0, 0, 0, 0, 0x21, 14, 1, 0, 0 };
	uint8_t b[256];
	uint32_t full;

	for (int na = 0; na < 2; na++) {
		uint8_t type = na ? 136 : 135;
		const uint8_t *ll = na ? tlla : slla;
		const char *dst = na ? LBD : "ff02::1:ff00:100";

		/* The valid message these start from. */
		full = mk_nd(b, type, BACKEND, dst, 255, VIP, 0, ll, 8);
		check_nd_valid(b, full, VIP, 0, 1);
		/* Hop limit below 255: not from this link. */
		full = mk_nd(b, type, BACKEND, dst, 254, VIP, 0, ll, 8);
		check_nd_invalid(b, full);
		full = mk_nd(b, type, BACKEND, dst, 64, VIP, 0, ll, 8);
		check_nd_invalid(b, full);
		/* Code not 0. */
		full = mk_nd(b, type, BACKEND, dst, 255, VIP, 0, ll, 8);
		b[ETH + 41] = 1;
		set_csum6(b + ETH, b + ETH + 40, 32);
		check_nd_invalid(b, full);
		/* Checksum wrong, by one bit anywhere. */
		for (uint32_t bit = 0; bit < 32 * 8; bit++) {
			struct pkt p;
			full = mk_nd(b, type, BACKEND, dst, 255, VIP, 0, ll, 8);
			b[ETH + 40 + bit / 8] ^= (uint8_t)(1 << bit % 8);
			assert_int_equal(parse_exact(b, full, &p), PKT_OK);
			assert_false(p.nd_valid);
		}
		/* Shorter than 24 bytes (checksum right for what there is). */
		for (uint32_t len = 8; len < 24; len++) {
			full = mk_nd(b, type, BACKEND, dst, 255, VIP, 0, NULL, 0);
			put16(b + ETH + 4, (uint16_t)len);
			set_csum6(b + ETH, b + ETH + 40, len);
			check_nd_invalid(b, ETH + 40 + len);
		}
		/* A multicast target. */
		full = mk_nd(b, type, BACKEND, dst, 255, "ff02::1", 0, ll, 8);
		check_nd_invalid(b, full);
		full = mk_nd(b, type, BACKEND, dst, 255, "ff05::1:3", 0, ll, 8);
		check_nd_invalid(b, full);
		/* An option of length 0, one past the end of the message, bytes too few for an option. */
		full = mk_nd(b, type, BACKEND, dst, 255, VIP, 0, bad_opt_len0, 16);
		check_nd_invalid(b, full);
		full = mk_nd(b, type, BACKEND, dst, 255, VIP, 0, past_end, 8);
		check_nd_invalid(b, full);
		full = mk_nd(b, type, BACKEND, dst, 255, VIP, 0, short_tail, 12);
		check_nd_invalid(b, full);
		full = mk_nd(b, type, BACKEND, dst, 255, VIP, 0, short_tail, 9);
		check_nd_invalid(b, full);
		/* Any fragment header, even an atomic one (RFC 6980 section 5). */
		for (uint16_t offm = 0; offm < 2; offm++) {
			struct pkt p;

			full = mk_nd_ext(b, type, 44, offm, ll);
			assert_int_equal(parse_exact(b, full, &p), PKT_OK);
			assert_int_equal(p.icmp_type, type);
			assert_false(p.nd_valid);
		}
	}

	/* NA: solicited flag set in an advertisement to a multicast address. */
	full = mk_nd(b, 136, BACKEND, "ff02::1", 255, BACKEND, 0x60, tlla, 8);
	check_nd_invalid(b, full);
	full = mk_nd(b, 136, BACKEND, "ff02::1:ff00:100", 255, BACKEND, 0x40, NULL, 0);
	check_nd_invalid(b, full);
	/* NS from :: with a source link-layer address, or not to a solicited-node address. */
	full = mk_nd(b, 135, "::", "ff02::1:ff00:100", 255, VIP, 0, slla, 8);
	check_nd_invalid(b, full);
	full = mk_nd(b, 135, "::", VIP, 255, VIP, 0, NULL, 0);
	check_nd_invalid(b, full);
	full = mk_nd(b, 135, "::", "ff02::1", 255, VIP, 0, NULL, 0);
	check_nd_invalid(b, full);
	full = mk_nd(b, 135, "::", "ff02::2:ff00:100", 255, VIP, 0, NULL, 0);
	check_nd_invalid(b, full);
}

/* ---- builders ---- */

static void test_csum6(void **state)
{
	struct ipaddr s = addr(LBD), d = addr("ff02::1:ff0a:bc21");
	uint8_t m[32] = { 135 };
	uint16_t c;

	memcpy(m + 8, addr("2001:db8::a:bc21").b, 16);
	m[24] = 1;
	m[25] = 1;
	m[26] = 0x02;
	m[31] = 0x01;
	/* Worked out apart from the project's code: 0xa3c3. */
	c = pkt_csum6(&s, &d, IPPROTO_ICMPV6, m, sizeof(m));
	assert_int_equal(csum_value(c), 0xa3c3);
	memcpy(m + 2, &c, 2);
	assert_int_equal(pkt_csum6(&s, &d, IPPROTO_ICMPV6, m, sizeof(m)), 0);
	/* Next header and length are in the sum; an odd length pads with zero. */
	assert_int_not_equal(pkt_csum6(&s, &d, IPPROTO_UDP, m, sizeof(m)), 0);
	assert_int_not_equal(pkt_csum6(&s, &d, IPPROTO_ICMPV6, m, sizeof(m) - 1), 0);
	m[31] = 0;
	c = pkt_csum6(&s, &d, IPPROTO_ICMPV6, m, 31);
	assert_int_equal(c, pkt_csum6(&s, &d, IPPROTO_ICMPV6, m, 31));
	assert_int_not_equal(c, pkt_csum6(&s, &d, IPPROTO_ICMPV6, m, 32));
	/* The length is a 32-bit field of the pseudo-header: both halves count. */
	{
		uint32_t n = 70000;
		uint8_t *big = calloc(1, 40 + n), *ip = calloc(1, 40);

		assert_true(big && ip);
		memcpy(ip + 8, s.b, 16);
		memcpy(ip + 24, d.b, 16);
		memset(big + 40, 0x5a, n);
		assert_int_equal(pkt_csum6(&s, &d, IPPROTO_ICMPV6, big + 40, n), ref_csum6(ip, big + 40, n));
		free(big);
		free(ip);
	}
}

/* The NS lbd sends to resolve a backend: byte for byte as worked out apart from the project's code. */
static void test_ns_build(void **state)
{
	static const uint8_t golden[PKT_NS_LEN] = {
		0x33, 0x33, 0xff, 0x0a, 0xbc, 0x21, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x86, 0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x20, 0x01,
		0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x11, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x01, 0xff, 0x0a, 0xbc, 0x21, 0x87, 0x00, 0xa3, 0xc3, 0x00, 0x00,
		0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x0a, 0xbc, 0x21, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00,
		0x00, 0x01,
	};
	static const uint8_t me[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	struct ipaddr src = addr(LBD), target = addr("2001:db8::a:bc21");
	uint8_t *f = malloc(PKT_NS_LEN);
	struct pkt p;

	memset(f, 0xaa, PKT_NS_LEN);
	pkt_ns_build(f, me, &src, &target);
	assert_memory_equal(f, golden, PKT_NS_LEN);
	assert_int_equal(pkt_parse(f, PKT_NS_LEN, &p), PKT_OK);
	check_consistent(PKT_OK, &p, f, PKT_NS_LEN);
	assert_int_equal(p.kind, PKT_IPV6);
	assert_int_equal(p.icmp_type, 135);
	assert_true(p.nd_valid);
	assert_true(ipaddr_eq(&p.nd_target, &target));
	assert_true(ipaddr_eq(&p.src, &src));
	assert_addr(&p.dst, "ff02::1:ff0a:bc21");
	assert_ptr_equal(p.nd_lladdr, f + ETH + 40 + 26);
	assert_memory_equal(p.nd_lladdr, me, 6);
	assert_int_equal(ref_csum6(f + ETH, f + ETH + 40, 32), 0);
	free(f);
}

static void test_na_build(void **state)
{
	static const uint8_t me[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	static const uint8_t all_nodes_mac[6] = { 0x33, 0x33, 0, 0, 0, 0x01 };
	static const struct {
		const char *dst;
		const uint8_t *eth_dst;
		uint8_t flags;
		int valid;
	} cases[] = {
		{ "ff02::1", all_nodes_mac, 0x20, 1 },  /* unsolicited, on takeover */
		{ BACKEND, backend_mac, 0x60, 1 },      /* the answer to a backend's solicitation */
		{ ROUTER, backend_mac, 0xe0, 1 },
		{ "ff02::1", all_nodes_mac, 0x60, 0 },  /* solicited to multicast: RFC 4861 7.1.2 drops it */
	};
	struct ipaddr vip = addr(VIP);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ipaddr dst = addr(cases[i].dst);
		uint8_t *f = malloc(PKT_NA_LEN);
		struct pkt p;

		memset(f, 0xaa, PKT_NA_LEN);
		pkt_na_build(f, me, cases[i].eth_dst, &vip, &dst, &vip, cases[i].flags);
		assert_memory_equal(f, cases[i].eth_dst, 6);
		assert_memory_equal(f + 6, me, 6);
		assert_int_equal(ref_csum6(f + ETH, f + ETH + 40, 32), 0);
		assert_int_equal(pkt_parse(f, PKT_NA_LEN, &p), PKT_OK);
		check_consistent(PKT_OK, &p, f, PKT_NA_LEN);
		assert_int_equal(p.icmp_type, 136);
		assert_int_equal(p.hop_limit, 255);
		assert_int_equal(p.ip_len, PKT_NA_LEN - ETH);
		assert_true(ipaddr_eq(&p.src, &vip));
		assert_true(ipaddr_eq(&p.dst, &dst));
		assert_int_equal(p.nd_valid, cases[i].valid);
		if (cases[i].valid) {
			assert_true(ipaddr_eq(&p.nd_target, &vip));
			assert_int_equal(p.nd_flags, cases[i].flags);
			assert_ptr_equal(p.nd_lladdr, f + ETH + 40 + 26);
			assert_memory_equal(p.nd_lladdr, me, 6);
		}
		free(f);
	}
	/* pkt_una_build is the first case, byte for byte. */
	uint8_t a[PKT_NA_LEN], b[PKT_NA_LEN];
	struct ipaddr all = addr("ff02::1");

	pkt_na_build(a, me, all_nodes_mac, &vip, &all, &vip, 0x20);
	pkt_una_build(b, me, &vip);
	assert_memory_equal(a, b, PKT_NA_LEN);
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rnd(void)
{
	return xorshift(&rng_state);
}

/* 50k random chains of random headers with random bytes in them: never a read past the frame, never an
 * inconsistent result, and the shaping reaches the ports, quotes and NDP often enough to mean something. */
static void test_random_chains(void **state)
{
	static const uint8_t exts[] = { 0, 43, 44, 51, 60 };
	static const uint8_t uls[] = { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, 50, 59 };
	unsigned ok = 0, ports = 0, inner = 0, bad_ext = 0;

	for (int i = 0; i < 50000; i++) {
		uint8_t types[10], f[400];
		size_t n = rnd() % 10;
		uint32_t full, len;
		struct pkt p;
		enum pkt_err e;

		for (size_t j = 0; j < n; j++)
			types[j] = exts[rnd() % sizeof(exts)];
		if (rnd() % 2) {
			full = mk6(f, types, n, uls[rnd() % sizeof(uls)], (uint16_t)(rnd() % 3 ? rnd() % 2 : rnd()));
		} else {
			full = mk_err(f, (uint8_t)(1 + rnd() % 4), types, n, uls[rnd() % 2], (uint16_t)(rnd() % 2));
		}
		/* Flip a few bytes past the fixed header, and sometimes cut the payload length or the frame. */
		for (unsigned k = rnd() % 4; k > 0; k--)
			f[ETH + 40 + rnd() % (full - ETH - 40)] = (uint8_t)rnd();
		if (rnd() % 4 == 0)
			put16(f + ETH + 4, (uint16_t)(rnd() % (full - ETH - 40 + 1)));
		len = rnd() % 4 == 0 ? rnd() % (full + 1) : full;
		e = parse_exact(f, len, &p);
		assert_true((unsigned)e <= PKT_BAD_EXT);
		ok += e == PKT_OK;
		ports += p.have_ports;
		inner += p.have_inner;
		bad_ext += e == PKT_BAD_EXT;
	}
	assert_true(ok > 10000);
	assert_true(ports > 1000);
	assert_true(inner > 1000);
	assert_true(bad_ext > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp),
		cmocka_unit_test(test_udp),
		cmocka_unit_test(test_each_extension),
		cmocka_unit_test(test_chains),
		cmocka_unit_test(test_hop_by_hop_not_first),
		cmocka_unit_test(test_routing_types),
		cmocka_unit_test(test_ah),
		cmocka_unit_test(test_ext_past_payload),
		cmocka_unit_test(test_fragments),
		cmocka_unit_test(test_jumbogram),
		cmocka_unit_test(test_padding_and_length),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_other_upper_layers),
		cmocka_unit_test(test_unwalked_extensions),
		cmocka_unit_test(test_echo),
		cmocka_unit_test(test_error_quotes),
		cmocka_unit_test(test_error_quotes_rejected),
		cmocka_unit_test(test_nd_valid),
		cmocka_unit_test(test_nd_invalid),
		cmocka_unit_test(test_csum6),
		cmocka_unit_test(test_ns_build),
		cmocka_unit_test(test_na_build),
		cmocka_unit_test(test_random_chains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
