/* Helpers of the frame parser's unit tests (test_pkt.c for IPv4 and ARP, test_pkt6.c for IPv6): building
 * headers byte by byte, and parsing a heap copy of exactly the frame's length so ASan catches any read past
 * its end. Included by a cmocka test after <cmocka.h>. */
#ifndef DSR_TEST_PKT_FRAMES_H
#define DSR_TEST_PKT_FRAMES_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lbd/pkt.h"

#define ETH 14

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void eth_hdr(uint8_t *b, uint16_t ethertype)
{
	static const uint8_t dst[6] = { 0x02, 0, 0, 0, 0, 0x01 }, src[6] = { 0x02, 0, 0, 0, 0, 0x02 };

	memcpy(b, dst, 6);
	memcpy(b + 6, src, 6);
	put16(b + 12, ethertype);
}

static inline void tcp_hdr(uint8_t *t, uint16_t sport, uint16_t dport, uint8_t flags)
{
	memset(t, 0, 20);
	put16(t, sport);
	put16(t + 2, dport);
	put32(t + 4, 1000);
	t[12] = 5 << 4;
	t[13] = flags;
	put16(t + 14, 65535);
}

static inline void udp_hdr(uint8_t *u, uint16_t sport, uint16_t dport, uint16_t len)
{
	put16(u, sport);
	put16(u + 2, dport);
	put16(u + 4, len);
	put16(u + 6, 0);
}

/* A whole TCP segment as the tests write it (tcp_hdr 40000 -> 443, SYN|ACK), not a fragment: ports,
 * flags and no quoted header. */
static inline void assert_tcp_segment(const struct pkt *p)
{
	assert_int_equal(p->proto, IPPROTO_TCP);
	assert_false(p->frag);
	assert_false(p->later_frag);
	assert_true(p->have_ports);
	assert_int_equal(p->sport, htons(40000));
	assert_int_equal(p->dport, htons(443));
	assert_int_equal(p->tcp_flags, 0x12);
	assert_false(p->have_inner);
}

/* The checksum pkt_csum returns (network order, ready to store) as a number. */
static inline uint16_t csum_value(uint16_t c)
{
	uint8_t out[2];

	memcpy(out, &c, 2);
	return (uint16_t)(out[0] << 8 | out[1]);
}

/* xorshift64: the same random frames on every run. */
static inline uint32_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 32);
}

/* Invariants every successful parse must keep, whatever the input: lengths inside the frame, fields
 * that belong together set together, pointers into the frame. */
static inline void check_consistent(enum pkt_err e, const struct pkt *p, const uint8_t *frame, uint32_t len)
{
	if (e != PKT_OK)
		return;
	switch (p->kind) {
	case PKT_IPV4:
	case PKT_IPV6:
		if (p->kind == PKT_IPV4) {
			assert_true(len >= ETH + 20);
			assert_true(p->ihl >= 20 && p->ihl <= 60 && p->ihl % 4 == 0);
		} else {
			assert_true(len >= ETH + 40);
			assert_true(p->ihl >= 40 && p->ihl % 4 == 0);
			assert_true(p->ip_len > 40);
		}
		assert_true(p->ip_len >= p->ihl && p->ip_len <= len - ETH);
		if (p->later_frag)
			assert_true(p->frag);
		if (p->have_ports) {
			assert_false(p->later_frag);
			assert_true(p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP);
			assert_true(p->ip_len >= p->ihl + (p->proto == IPPROTO_TCP ? 14 : 8));
		}
		if (p->have_inner) {
			uint32_t inner_min = p->kind == PKT_IPV4 ? 20 : 40;
			assert_int_equal(p->proto, p->kind == PKT_IPV4 ? IPPROTO_ICMP : IPPROTO_ICMPV6);
			if (p->kind == PKT_IPV4)
				assert_true(p->icmp_type == 3 || p->icmp_type == 11 || p->icmp_type == 12);
			else
				assert_true(p->icmp_type >= 1 && p->icmp_type <= 4);
			assert_true(p->ip_len >= p->ihl + 8 + inner_min + 8);
			assert_true(p->in_proto == IPPROTO_TCP || p->in_proto == IPPROTO_UDP);
			assert_int_equal(ipaddr_is_v4(&p->in_src), p->kind == PKT_IPV4);
		} else {
			assert_true(ipaddr_is_none(&p->in_src) && ipaddr_is_none(&p->in_dst));
		}
		assert_int_equal(ipaddr_is_v4(&p->src), p->kind == PKT_IPV4);
		if (p->nd_valid) {
			assert_int_equal(p->kind, PKT_IPV6);
			assert_int_equal(p->proto, IPPROTO_ICMPV6);
			assert_true(p->icmp_type == 135 || p->icmp_type == 136);
			assert_int_equal(p->hop_limit, 255);
			assert_true(p->ip_len >= p->ihl + 24);
			assert_false(p->frag);
		} else {
			assert_int_equal(p->nd_flags, 0);
			assert_true(ipaddr_is_none(&p->nd_target));
		}
		if (p->nd_lladdr) {
			assert_true(p->nd_valid);
			assert_true(p->nd_lladdr >= frame + ETH + p->ihl + 24 + 2);
			assert_true(p->nd_lladdr + 6 <= frame + ETH + p->ip_len);
		}
		assert_null(p->arp_sha);
		break;
	case PKT_ARP:
		assert_true(len >= ETH + 28);
		assert_non_null(p->arp_sha);
		assert_int_equal(p->ihl, 0);
		break;
	case PKT_VLAN:
	case PKT_OTHER:
		assert_true(len >= ETH);
		assert_int_equal(p->ihl, 0);
		assert_false(p->have_ports);
		break;
	default:
		fail_msg("kind %d", p->kind);
	}
}

/* Parses a heap copy of exactly len bytes of b and checks the invariants; pointers in *p are stale after. */
static inline enum pkt_err parse_exact(const uint8_t *b, uint32_t len, struct pkt *p)
{
	uint8_t *copy = malloc(len);
	enum pkt_err e;

	assert_true(copy != NULL || len == 0);
	if (len)
		memcpy(copy, b, len);
	e = pkt_parse(copy, len, p);
	check_consistent(e, p, copy, len);
	free(copy);
	return e;
}

#endif
