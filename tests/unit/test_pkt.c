/* Unit tests for lbd/pkt.c, the frame parser of the forwarding path, fed hostile input: every truncation
 * of valid frames, bad IPv4 header and length fields, options, fragments, ICMP errors and random bytes.
 * Each frame is parsed from a heap copy of exactly its length, so ASan catches any read past the end.
 * IPv6 is in test_pkt6.c. */
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

#define CLIENT 0xc0000201u   /* 192.0.2.1 */
#define VIP 0xc6336401u      /* 198.51.100.1 */
#define ROUTER 0xcb007101u   /* 203.0.113.1 */

/* The address field a holds host (an IPv4 address in host order), IPv4-mapped. */
static void assert_v4(const struct ipaddr *a, uint32_t host)
{
	struct ipaddr want = ipaddr_from_v4(htonl(host));

	assert_true(ipaddr_eq(a, &want));
}

/* Writes an IPv4 header of ihl 32-bit words (options filled with NOPs) and returns its length. */
static uint32_t ip_hdr(uint8_t *ip, unsigned ihl, uint16_t total, uint16_t fragw, uint8_t proto, uint32_t s,
		       uint32_t d)
{
	uint16_t sum;

	memset(ip, 0, ihl * 4);
	ip[0] = (uint8_t)(0x40 | ihl);
	put16(ip + 2, total);
	put16(ip + 4, 0x1234);
	put16(ip + 6, fragw);
	ip[8] = 64;
	ip[9] = proto;
	put32(ip + 12, s);
	put32(ip + 16, d);
	memset(ip + 20, 1, ihl * 4 - 20);
	sum = pkt_csum(ip, ihl * 4);
	memcpy(ip + 10, &sum, 2);
	return ihl * 4;
}

/* Ethernet + IPv4 (ihl words) + TCP with 6 bytes of payload; returns the frame length. */
static uint32_t mk_tcp(uint8_t *b, unsigned ihl, uint16_t fragw)
{
	uint32_t h;

	eth_hdr(b, 0x0800);
	h = ip_hdr(b + ETH, ihl, (uint16_t)(ihl * 4 + 20 + 6), fragw, IPPROTO_TCP, CLIENT, VIP);
	tcp_hdr(b + ETH + h, 40000, 443, 0x12);
	memcpy(b + ETH + h + 20, "hello!", 6);
	return ETH + h + 26;
}

static uint32_t mk_udp(uint8_t *b, uint16_t fragw)
{
	eth_hdr(b, 0x0800);
	ip_hdr(b + ETH, 5, 20 + 8 + 4, fragw, IPPROTO_UDP, CLIENT, VIP);
	udp_hdr(b + ETH + 20, 5353, 53, 12);
	memcpy(b + ETH + 28, "abcd", 4);
	return ETH + 20 + 12;
}

static uint32_t mk_echo(uint8_t *b)
{
	uint8_t *icmp = b + ETH + 20;

	eth_hdr(b, 0x0800);
	ip_hdr(b + ETH, 5, 20 + 8 + 16, 0, IPPROTO_ICMP, CLIENT, VIP);
	memset(icmp, 0, 24);
	icmp[0] = 8;
	put16(icmp + 4, 0x4242);
	put16(icmp + 6, 1);
	memset(icmp + 8, 0xa5, 16);
	return ETH + 20 + 24;
}

/* ICMP destination unreachable / fragmentation needed from a router, quoting the IPv4 header (inner_ihl
 * words) and the first 8 bytes of a TCP segment the VIP's backend sent to the client. */
static uint32_t mk_fragneeded(uint8_t *b, unsigned inner_ihl, uint16_t inner_fragw, uint8_t inner_proto)
{
	uint8_t *icmp = b + ETH + 20, *q = icmp + 8;
	uint32_t qlen = inner_ihl * 4 + 8;

	eth_hdr(b, 0x0800);
	ip_hdr(b + ETH, 5, (uint16_t)(20 + 8 + qlen), 0, IPPROTO_ICMP, ROUTER, VIP);
	memset(icmp, 0, 8);
	icmp[0] = 3;
	icmp[1] = 4;
	put16(icmp + 6, 1400);
	ip_hdr(q, inner_ihl, 1500, inner_fragw, inner_proto, VIP, CLIENT);
	put16(q + inner_ihl * 4, 443);
	put16(q + inner_ihl * 4 + 2, 40000);
	put32(q + inner_ihl * 4 + 4, 0xdeadbeef);
	return ETH + 20 + 8 + qlen;
}

static uint32_t mk_arp(uint8_t *b, uint16_t op)
{
	uint8_t *a = b + ETH;
	static const uint8_t sha[6] = { 0x02, 0, 0, 0, 0, 0x02 };

	eth_hdr(b, 0x0806);
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, sha, 6);
	put32(a + 14, CLIENT);
	memset(a + 18, 0, 6);
	put32(a + 24, VIP);
	return ETH + 28;
}

/* Every strict prefix of an IPv4 frame whose total length is the whole datagram is an error of the
 * right kind: too short for Ethernet or an IP header, or shorter than the IP total length. */
static void check_ipv4_truncations(const uint8_t *b, uint32_t full, unsigned ihl)
{
	struct pkt p;

	for (uint32_t len = 0; len < full; len++) {
		enum pkt_err e = parse_exact(b, len, &p);
		if (len < ETH + 20 || len < ETH + ihl * 4)
			assert_int_equal(e, PKT_TRUNCATED);
		else
			assert_int_equal(e, PKT_BAD_LEN);
		assert_int_equal(p.kind, len < ETH ? PKT_OTHER : PKT_IPV4);
		assert_false(p.have_ports);
		assert_false(p.have_inner);
	}
}

static void test_tcp(void **state)
{
	uint8_t b[128];
	uint32_t full = mk_tcp(b, 5, 0);
	struct pkt p;

	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.kind, PKT_IPV4);
	assert_int_equal(p.ethertype, 0x0800);
	assert_v4(&p.src, CLIENT);
	assert_v4(&p.dst, VIP);
	assert_int_equal(p.ihl, 20);
	assert_int_equal(p.ip_len, 46);
	assert_int_equal(p.hop_limit, 64);
	assert_int_equal(p.frag_id, htonl(0x1234));
	assert_tcp_segment(&p);
	check_ipv4_truncations(b, full, 5);
}

/* The IP total length shrunk to cut the TCP header: fewer than 14 bytes (up to the flags) is truncated. */
static void test_tcp_short_ip_len(void **state)
{
	uint8_t b[128];
	struct pkt p;

	mk_tcp(b, 5, 0);
	for (uint16_t l4 = 0; l4 <= 20; l4++) {
		uint32_t len = ETH + 20 + l4;
		enum pkt_err e;
		ip_hdr(b + ETH, 5, (uint16_t)(20 + l4), 0, IPPROTO_TCP, CLIENT, VIP);
		e = parse_exact(b, len, &p);
		if (l4 < 14) {
			assert_int_equal(e, PKT_TRUNCATED);
			assert_false(p.have_ports);
		} else {
			assert_int_equal(e, PKT_OK);
			assert_true(p.have_ports);
			assert_int_equal(p.dport, htons(443));
			assert_int_equal(p.tcp_flags, 0x12);
		}
	}
}

static void test_udp(void **state)
{
	uint8_t b[128];
	uint32_t full = mk_udp(b, 0);
	struct pkt p;

	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.proto, IPPROTO_UDP);
	assert_true(p.have_ports);
	assert_int_equal(p.sport, htons(5353));
	assert_int_equal(p.dport, htons(53));
	assert_int_equal(p.tcp_flags, 0);
	check_ipv4_truncations(b, full, 5);

	for (uint16_t l4 = 0; l4 <= 12; l4++) {
		uint32_t len = ETH + 20 + l4;
		enum pkt_err e;
		ip_hdr(b + ETH, 5, (uint16_t)(20 + l4), 0, IPPROTO_UDP, CLIENT, VIP);
		e = parse_exact(b, len, &p);
		assert_int_equal(e, l4 < 8 ? PKT_TRUNCATED : PKT_OK);
		assert_int_equal(p.have_ports, l4 >= 8);
	}
}

static void test_icmp_echo(void **state)
{
	uint8_t b[128];
	uint32_t full = mk_echo(b);
	struct pkt p;

	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.proto, IPPROTO_ICMP);
	assert_int_equal(p.icmp_type, 8);
	assert_int_equal(p.icmp_code, 0);
	assert_false(p.have_ports);
	assert_false(p.have_inner);
	check_ipv4_truncations(b, full, 5);

	for (uint16_t l4 = 0; l4 <= 24; l4++) {
		uint32_t len = ETH + 20 + l4;
		enum pkt_err e;
		ip_hdr(b + ETH, 5, (uint16_t)(20 + l4), 0, IPPROTO_ICMP, CLIENT, VIP);
		e = parse_exact(b, len, &p);
		assert_int_equal(e, l4 < 8 ? PKT_TRUNCATED : PKT_OK);
		assert_int_equal(p.icmp_type, l4 < 8 ? 0 : 8);
		assert_false(p.have_inner);
	}
}

static void test_icmp_frag_needed(void **state)
{
	uint8_t b[160];
	uint32_t full = mk_fragneeded(b, 5, 0x4000, IPPROTO_TCP);
	struct pkt p;

	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_v4(&p.src, ROUTER);
	assert_int_equal(p.icmp_type, 3);
	assert_int_equal(p.icmp_code, 4);
	assert_false(p.have_ports);
	assert_true(p.have_inner);
	assert_int_equal(p.in_proto, IPPROTO_TCP);
	assert_v4(&p.in_src, VIP);
	assert_v4(&p.in_dst, CLIENT);
	assert_int_equal(p.in_sport, htons(443));
	assert_int_equal(p.in_dport, htons(40000));
	check_ipv4_truncations(b, full, 5);

	/* A quote cut short by the outer total length: the error still parses, without an inner header. */
	for (uint16_t q = 0; q <= 28; q++) {
		uint32_t len = ETH + 20 + 8 + q;
		enum pkt_err e;
		ip_hdr(b + ETH, 5, (uint16_t)(20 + 8 + q), 0, IPPROTO_ICMP, ROUTER, VIP);
		e = parse_exact(b, len, &p);
		assert_int_equal(e, PKT_OK);
		assert_int_equal(p.icmp_type, 3);
		assert_int_equal(p.have_inner, q >= 28);
	}
}

/* The quoted header may carry options; the quoted ports follow them. */
static void test_icmp_inner_options(void **state)
{
	uint8_t b[160];
	struct pkt p;

	for (unsigned ihl = 6; ihl <= 15; ihl++) {
		uint32_t full = mk_fragneeded(b, ihl, 0, IPPROTO_TCP);
		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_true(p.have_inner);
		assert_int_equal(p.in_sport, htons(443));
		assert_int_equal(p.in_dport, htons(40000));
		/* One byte short of the 8 quoted payload bytes. */
		ip_hdr(b + ETH, 5, (uint16_t)(full - ETH - 1), 0, IPPROTO_ICMP, ROUTER, VIP);
		assert_int_equal(parse_exact(b, full - 1, &p), PKT_OK);
		assert_false(p.have_inner);
	}
}

static void test_icmp_inner_rejected(void **state)
{
	uint8_t b[160];
	uint32_t full;
	struct pkt p;

	/* A non-first fragment quotes no ports. */
	full = mk_fragneeded(b, 5, 0x2000 | 185, IPPROTO_TCP);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.icmp_type, 3);
	assert_false(p.have_inner);
	full = mk_fragneeded(b, 5, 1, IPPROTO_UDP);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	/* The first fragment does. */
	full = mk_fragneeded(b, 5, 0x2000, IPPROTO_UDP);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_true(p.have_inner);
	assert_int_equal(p.in_proto, IPPROTO_UDP);
	/* Neither TCP nor UDP. */
	full = mk_fragneeded(b, 5, 0, IPPROTO_ICMP);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	/* Quoted version and header length. */
	full = mk_fragneeded(b, 5, 0, IPPROTO_TCP);
	b[ETH + 28] = 0x65;
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	for (uint8_t ihl = 0; ihl < 5; ihl++) {
		b[ETH + 28] = (uint8_t)(0x40 | ihl);
		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_false(p.have_inner);
	}
	/* A quoted header length beyond the quote. */
	b[ETH + 28] = 0x4f;
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	/* Only errors quote: an echo request carrying the same bytes does not. */
	full = mk_fragneeded(b, 5, 0, IPPROTO_TCP);
	b[ETH + 20] = 8;
	b[ETH + 21] = 0;
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	/* Time exceeded and parameter problem quote, too. */
	b[ETH + 20] = 11;
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_true(p.have_inner);
	b[ETH + 20] = 12;
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_true(p.have_inner);
}

static void test_arp(void **state)
{
	uint8_t b[64];
	uint32_t full = mk_arp(b, 1);
	struct pkt p;
	uint8_t *copy = malloc(full);

	memcpy(copy, b, full);
	assert_int_equal(pkt_parse(copy, full, &p), PKT_OK);
	assert_int_equal(p.kind, PKT_ARP);
	assert_int_equal(p.ethertype, 0x0806);
	assert_int_equal(p.arp_op, 1);
	assert_ptr_equal(p.arp_sha, copy + ETH + 8);
	assert_int_equal(p.arp_spa, htonl(CLIENT));
	assert_int_equal(p.arp_tpa, htonl(VIP));
	assert_int_equal(p.ihl, 0);
	assert_true(ipaddr_is_none(&p.src));
	free(copy);

	for (uint32_t len = 0; len < full; len++) {
		enum pkt_err e = parse_exact(b, len, &p);
		assert_int_equal(e, PKT_TRUNCATED);
		assert_int_equal(p.kind, len < ETH ? PKT_OTHER : PKT_ARP);
		assert_null(p.arp_sha);
	}
	mk_arp(b, 2);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_int_equal(p.arp_op, 2);
}

static void test_arp_bad_types(void **state)
{
	static const struct {
		unsigned off, width;
		uint16_t val;
	} bad[] = {
		{ 0, 2, 6 },         /* IEEE 802 hardware */
		{ 0, 2, 0 },
		{ 2, 2, 0x86dd },    /* IPv6 protocol */
		{ 2, 2, 0x0806 },
		{ 4, 1, 8 },         /* hardware address length */
		{ 4, 1, 0 },
		{ 5, 1, 16 },        /* protocol address length */
		{ 5, 1, 0 },
	};
	uint8_t b[64];
	struct pkt p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t full = mk_arp(b, 1);
		if (bad[i].width == 2)
			put16(b + ETH + bad[i].off, bad[i].val);
		else
			b[ETH + bad[i].off] = (uint8_t)bad[i].val;
		assert_int_equal(parse_exact(b, full, &p), PKT_BAD_ARP);
		assert_int_equal(p.kind, PKT_ARP);
		assert_null(p.arp_sha);
		assert_int_equal(p.arp_spa, 0);
	}
}

static void test_padded_to_60(void **state)
{
	uint8_t b[64];
	struct pkt p;
	uint32_t full;

	memset(b, 0xee, sizeof(b));
	full = mk_arp(b, 1);
	assert_true(full < 60);
	assert_int_equal(parse_exact(b, 60, &p), PKT_OK);
	assert_int_equal(p.arp_tpa, htonl(VIP));

	memset(b, 0, sizeof(b));
	full = mk_udp(b, 0);
	assert_true(full < 60);
	assert_int_equal(parse_exact(b, 60, &p), PKT_OK);
	assert_int_equal(p.ip_len, 32);
	assert_int_equal(p.dport, htons(53));

	/* Padding does not stand in for the L4 header the total length leaves out. */
	memset(b, 0xee, sizeof(b));
	mk_tcp(b, 5, 0);
	ip_hdr(b + ETH, 5, 20 + 8, 0, IPPROTO_TCP, CLIENT, VIP);
	assert_int_equal(parse_exact(b, 60, &p), PKT_TRUNCATED);
	assert_false(p.have_ports);
	ip_hdr(b + ETH, 5, 20, 0, IPPROTO_UDP, CLIENT, VIP);
	assert_int_equal(parse_exact(b, 60, &p), PKT_TRUNCATED);
	assert_false(p.have_ports);
	ip_hdr(b + ETH, 5, 20, 0, 47, CLIENT, VIP);
	assert_int_equal(parse_exact(b, 60, &p), PKT_OK);
	assert_int_equal(p.proto, 47);
	assert_int_equal(p.ip_len, 20);
}

static void test_bad_version(void **state)
{
	static const uint8_t versions[] = { 0, 1, 5, 6, 15 };
	uint8_t b[128];
	uint32_t full = mk_tcp(b, 5, 0);
	struct pkt p;

	for (size_t i = 0; i < sizeof(versions); i++) {
		b[ETH] = (uint8_t)(versions[i] << 4 | 5);
		assert_int_equal(parse_exact(b, full, &p), PKT_BAD_VERSION);
		assert_int_equal(p.kind, PKT_IPV4);
		assert_false(p.have_ports);
	}
}

static void test_bad_ihl(void **state)
{
	uint8_t b[128];
	uint32_t full = mk_tcp(b, 5, 0);
	struct pkt p;

	for (uint8_t ihl = 0; ihl < 5; ihl++) {
		b[ETH] = (uint8_t)(0x40 | ihl);
		assert_int_equal(parse_exact(b, full, &p), PKT_BAD_IHL);
		assert_false(p.have_ports);
	}
	/* A header longer than the frame (46 bytes of IP here). */
	b[ETH] = 0x4c;
	assert_int_equal(parse_exact(b, full, &p), PKT_TRUNCATED);
	b[ETH] = 0x4f;
	assert_int_equal(parse_exact(b, full, &p), PKT_TRUNCATED);
	/* Options that fit the frame but leave too little of the TCP header. */
	b[ETH] = 0x4b;
	assert_int_equal(parse_exact(b, full, &p), PKT_TRUNCATED);
	assert_int_equal(p.ihl, 44);
	assert_false(p.have_ports);
	/* A header longer than the total length but within the frame. */
	b[ETH] = 0x46;
	put16(b + ETH + 2, 20);
	assert_int_equal(parse_exact(b, full, &p), PKT_BAD_LEN);
}

static void test_bad_total_len(void **state)
{
	uint8_t b[128];
	uint32_t full = mk_tcp(b, 6, 0);
	struct pkt p;

	for (uint16_t tl = 0; tl < 24; tl++) {
		put16(b + ETH + 2, tl);
		assert_int_equal(parse_exact(b, full, &p), PKT_BAD_LEN);
		assert_false(p.have_ports);
	}
	put16(b + ETH + 2, (uint16_t)(full - ETH + 1));
	assert_int_equal(parse_exact(b, full, &p), PKT_BAD_LEN);
	put16(b + ETH + 2, 0xffff);
	assert_int_equal(parse_exact(b, full, &p), PKT_BAD_LEN);
	put16(b + ETH + 2, (uint16_t)(full - ETH));
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	/* An IP header alone, no L4 at all. */
	put16(b + ETH + 2, 24);
	b[ETH + 9] = 0;
	assert_int_equal(parse_exact(b, ETH + 24, &p), PKT_OK);
	assert_int_equal(p.ip_len, 24);
	assert_false(p.have_ports);
}

static void test_ip_options(void **state)
{
	uint8_t b[128];
	struct pkt p;

	for (unsigned ihl = 6; ihl <= 15; ihl++) {
		uint32_t full = mk_tcp(b, ihl, 0);
		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_int_equal(p.ihl, ihl * 4);
		assert_int_equal(p.ip_len, ihl * 4 + 26);
		assert_tcp_segment(&p);
		check_ipv4_truncations(b, full, ihl);
	}
}

static void test_fragments(void **state)
{
	uint8_t b[128];
	uint32_t full;
	struct pkt p;

	/* Don't-fragment alone is not a fragment. */
	full = mk_tcp(b, 5, 0x4000);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.frag);
	assert_int_equal(p.frag_proto, 0);
	assert_true(p.have_ports);

	/* First fragment: more-fragments set, offset 0, ports present. */
	full = mk_tcp(b, 5, 0x2000);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_true(p.frag);
	assert_false(p.later_frag);
	assert_true(p.have_ports);
	assert_int_equal(p.dport, htons(443));
	assert_int_equal(p.frag_proto, IPPROTO_TCP);
	full = mk_udp(b, 0x2000);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_true(p.frag);
	assert_true(p.have_ports);
	assert_int_equal(p.dport, htons(53));

	/* A first fragment too short to hold the ports parses, without them. */
	mk_tcp(b, 5, 0x2000);
	ip_hdr(b + ETH, 5, 28, 0x2000, IPPROTO_TCP, CLIENT, VIP);
	assert_int_equal(parse_exact(b, ETH + 28, &p), PKT_OK);
	assert_true(p.frag);
	assert_false(p.have_ports);

	/* Later fragments, last or not: bytes where ports would be are payload. */
	static const uint16_t later[] = { 1, 185, 0x1000, 0x1fff, 0x2000 | 1, 0x2000 | 185, 0x2000 | 0x1fff, 0x4000 | 7 };
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		full = mk_tcp(b, 5, later[i]);
		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_true(p.frag);
		assert_true(p.later_frag);
		assert_int_equal(p.frag_proto, IPPROTO_TCP);
		assert_false(p.have_ports);
		assert_int_equal(p.sport, 0);
		assert_int_equal(p.dport, 0);
		assert_int_equal(p.tcp_flags, 0);
		assert_v4(&p.src, CLIENT);
		assert_v4(&p.dst, VIP);
		full = mk_udp(b, later[i]);
		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_true(p.later_frag);
		assert_false(p.have_ports);
		/* A later fragment with only a byte of payload. */
		ip_hdr(b + ETH, 5, 21, later[i], IPPROTO_UDP, CLIENT, VIP);
		assert_int_equal(parse_exact(b, ETH + 21, &p), PKT_OK);
		assert_true(p.later_frag);
	}
}

static void test_ethertypes(void **state)
{
	static const uint16_t vlan[] = { 0x8100, 0x88a8 };
	static const uint16_t other[] = { 0x8035, 0x0000, 0xffff, 0x0801, 0x9100, 0x88cc };
	uint8_t b[128];
	struct pkt p;

	for (size_t i = 0; i < 2; i++) {
		uint32_t full = mk_tcp(b, 5, 0);
		put16(b + 12, vlan[i]);
		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_int_equal(p.kind, PKT_VLAN);
		assert_int_equal(p.ethertype, vlan[i]);
		assert_false(p.have_ports);
		assert_true(ipaddr_is_none(&p.src));
		assert_int_equal(parse_exact(b, ETH, &p), PKT_OK);
		assert_int_equal(p.kind, PKT_VLAN);
	}
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		uint32_t full = mk_tcp(b, 5, 0);
		put16(b + 12, other[i]);
		assert_int_equal(parse_exact(b, full, &p), PKT_OK);
		assert_int_equal(p.kind, PKT_OTHER);
		assert_int_equal(p.ethertype, other[i]);
		assert_int_equal(parse_exact(b, ETH, &p), PKT_OK);
		assert_int_equal(p.kind, PKT_OTHER);
	}
	/* An IPv4 packet behind the IPv6 ethertype is a bad IPv6 header (test_pkt6.c has the rest). */
	mk_tcp(b, 5, 0);
	put16(b + 12, 0x86dd);
	assert_int_equal(parse_exact(b, ETH + 40, &p), PKT_BAD_VERSION);
	assert_int_equal(p.kind, PKT_IPV6);
	assert_int_equal(parse_exact(b, ETH + 39, &p), PKT_TRUNCATED);
	assert_int_equal(p.kind, PKT_IPV6);
}

/* Fields of a previous parse never leak into the next. */
static void test_result_cleared(void **state)
{
	uint8_t b[160];
	uint32_t full;
	struct pkt p;

	memset(&p, 0xab, sizeof(p));
	assert_int_equal(pkt_parse(NULL, 0, &p), PKT_TRUNCATED);
	assert_int_equal(p.kind, PKT_OTHER);
	assert_int_equal(p.ethertype, 0);
	assert_null(p.arp_sha);
	assert_false(p.have_ports);

	full = mk_fragneeded(b, 5, 0, IPPROTO_TCP);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_true(p.have_inner);
	full = mk_arp(b, 1);
	assert_int_equal(parse_exact(b, full, &p), PKT_OK);
	assert_false(p.have_inner);
	assert_int_equal(p.in_sport, 0);
	assert_int_equal(p.icmp_type, 0);
	assert_true(ipaddr_is_none(&p.src));
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	return xorshift(&rng_state);
}

/* 100k frames of random length, most of them shaped enough to get past the first checks. */
static void test_random_frames(void **state)
{
	static const uint16_t types[] = { 0x0800, 0x0800, 0x0800, 0x0806, 0x8100, 0x88a8, 0x86dd };
	static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, 47 };
	unsigned ok = 0, inner = 0, ports = 0;

	for (int i = 0; i < 100000; i++) {
		uint32_t len = rnd() % 2001;
		uint8_t *f = malloc(len);
		uint32_t shape = rnd() % 8;
		enum pkt_err e;
		struct pkt p;

		assert_true(f != NULL || len == 0);
		for (uint32_t j = 0; j < len; j++)
			f[j] = (uint8_t)rnd();
		if (shape > 0 && len >= ETH)
			put16(f + 12, types[rnd() % (sizeof(types) / sizeof(types[0]))]);
		if (shape > 1 && len >= ETH + 20 && f[13] == 0x00 && f[12] == 0x08) {
			uint32_t room = len - ETH;
			f[ETH] = (uint8_t)(0x40 | (rnd() % 16));
			put16(f + ETH + 2, (uint16_t)(shape > 4 ? room - rnd() % (room < 64 ? room : 64) : rnd()));
			f[ETH + 9] = protos[rnd() % 4];
			if (shape > 3)
				put16(f + ETH + 6, (uint16_t)(rnd() % 4 ? 0 : rnd()));
			if (shape > 5 && len >= ETH + 20 + 8 + 28) {
				f[ETH] = 0x45;
				f[ETH + 9] = IPPROTO_ICMP;
				f[ETH + 20] = 3;
				f[ETH + 28] = (uint8_t)(0x40 | (5 + rnd() % 3));
				f[ETH + 28 + 9] = rnd() % 2 ? IPPROTO_TCP : IPPROTO_UDP;
				put16(f + ETH + 28 + 6, (uint16_t)(rnd() % 2 ? 0 : rnd()));
			}
		}
		e = pkt_parse(f, len, &p);
		check_consistent(e, &p, f, len);
		assert_true((unsigned)e <= PKT_BAD_EXT);
		assert_non_null(pkt_err_str(e));
		ok += e == PKT_OK && p.kind == PKT_IPV4;
		inner += p.have_inner;
		ports += p.have_ports;
		free(f);
	}
	/* The shaping must actually reach the deeper parsers, or this test proves little. */
	assert_true(ok > 5000);
	assert_true(ports > 1000);
	assert_true(inner > 100);
}

static void test_err_str(void **state)
{
	assert_string_equal(pkt_err_str(PKT_OK), "ok");
	assert_string_equal(pkt_err_str(PKT_TRUNCATED), "truncated");
	assert_string_equal(pkt_err_str(PKT_BAD_ARP), "bad arp");
	assert_string_equal(pkt_err_str(PKT_BAD_EXT), "bad extension header");
	assert_string_equal(pkt_err_str((enum pkt_err)99), "?");
	assert_string_equal(pkt_err_str((enum pkt_err)-1), "?");
}

static uint16_t csum_bytes(const uint8_t *b, uint32_t len)
{
	return csum_value(pkt_csum(b, len));
}

/* The ARP frames lbd writes (replies for the VIPs, requests, gratuitous ARP) parse back as written. */
static void test_arp_build(void **state)
{
	static const uint8_t me[6] = { 0x02, 0, 0, 0, 0, 0x01 }, to[6] = { 0x02, 0, 0, 0, 0, 0x09 };
	uint8_t f[PKT_ARP_LEN];
	struct pkt p;
	uint32_t vip = htonl(VIP), client = htonl(CLIENT);

	(void)state;
	memset(f, 0xaa, sizeof(f));
	pkt_arp_build(f, me, to, 2, vip, to, client);
	assert_int_equal(pkt_parse(f, sizeof(f), &p), PKT_OK);
	assert_int_equal(p.kind, PKT_ARP);
	assert_int_equal(p.arp_op, 2);
	assert_memory_equal(f, to, 6);
	assert_memory_equal(f + 6, me, 6);
	assert_memory_equal(p.arp_sha, me, 6);
	assert_int_equal(p.arp_spa, vip);
	assert_int_equal(p.arp_tpa, client);
	for (size_t i = ETH + 28; i < sizeof(f); i++)
		assert_int_equal(f[i], 0);      /* padding to the minimum frame, no stale bytes */
}

static void test_csum(void **state)
{
	/* RFC 1071 section 3 example: the sum is ddf2, so the checksum is its complement 220d. */
	static const uint8_t rfc1071[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	/* A real IPv4 header (192.168.0.1 -> 192.168.0.199, UDP) whose checksum is b861. */
	uint8_t ip[] = { 0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7 };
	static const uint8_t ones[] = { 0xff, 0xff, 0xff, 0xff };
	static const uint8_t odd[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4 };
	uint8_t *heap;

	assert_int_equal(csum_bytes(rfc1071, sizeof(rfc1071)), 0x220d);
	assert_int_equal(csum_bytes(ip, sizeof(ip)), 0);   /* a valid header sums to zero */
	ip[10] = ip[11] = 0;
	assert_int_equal(csum_bytes(ip, sizeof(ip)), 0xb861);
	assert_int_equal(csum_bytes(ones, 0), 0xffff);
	assert_int_equal(csum_bytes(ones, sizeof(ones)), 0x0000);
	/* Odd length: the last byte is the high half of a zero-padded word: 0001+f203+f400 = 1e604 -> e605. */
	assert_int_equal(csum_bytes(odd, sizeof(odd)), (uint16_t)~0xe605);
	/* Exact-size heap buffer: the odd tail must not read a byte further. */
	heap = malloc(sizeof(odd));
	memcpy(heap, odd, sizeof(odd));
	assert_int_equal(csum_bytes(heap, sizeof(odd)), (uint16_t)~0xe605);
	free(heap);
	/* Many carries: 32k words of ffff still fold correctly. */
	heap = malloc(65536);
	memset(heap, 0xff, 65536);
	assert_int_equal(csum_bytes(heap, 65536), 0);
	heap[0] = 0;
	assert_int_equal(csum_bytes(heap, 65536), 0xff00);   /* 00ff + 0 (mod ffff), complemented */
	free(heap);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp),
		cmocka_unit_test(test_tcp_short_ip_len),
		cmocka_unit_test(test_udp),
		cmocka_unit_test(test_icmp_echo),
		cmocka_unit_test(test_icmp_frag_needed),
		cmocka_unit_test(test_icmp_inner_options),
		cmocka_unit_test(test_icmp_inner_rejected),
		cmocka_unit_test(test_arp),
		cmocka_unit_test(test_arp_bad_types),
		cmocka_unit_test(test_padded_to_60),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_bad_ihl),
		cmocka_unit_test(test_bad_total_len),
		cmocka_unit_test(test_ip_options),
		cmocka_unit_test(test_fragments),
		cmocka_unit_test(test_ethertypes),
		cmocka_unit_test(test_result_cleared),
		cmocka_unit_test(test_random_frames),
		cmocka_unit_test(test_err_str),
		cmocka_unit_test(test_csum),
		cmocka_unit_test(test_arp_build),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
