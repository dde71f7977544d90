/* Unit tests for lbd/filter.c: the classic BPF program of the RX socket runs here on a small interpreter of
 * the opcodes it uses, with the kernel's rule that a load past the end of the packet drops it, and must
 * pass exactly ARP, VLAN-tagged frames, IPv4 and IPv6 to a VIP, IPv4 and IPv6 too short to say and ICMPv6
 * router and neighbour discovery, never other hosts' frames. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/ipaddr.h"
#include "lbd/lbd.h"

#define PROG_CAP 640
#define VIP_BASE 0xc6336400u     /* 198.51.100.0 */

/* Runs prog on len bytes of pkt received with the given packet type; returns the accepted length. */
static uint32_t bpf_run(const struct sock_filter *prog, size_t n, const uint8_t *pkt, uint32_t len,
			uint8_t pkttype)
{
	uint32_t a = 0;
	size_t pc = 0;

	for (;;) {
		assert_true(pc < n);
		const struct sock_filter *f = &prog[pc++];
		uint32_t k = f->k;
		switch (f->code) {
		case BPF_LD | BPF_B | BPF_ABS:
			if (k == (uint32_t)(SKF_AD_OFF + SKF_AD_PKTTYPE)) {
				a = pkttype;
				break;
			}
			if (k >= (uint32_t)SKF_AD_OFF)
				fail_msg("ancillary load %#x not modelled", k);
			if (k >= len)
				return 0;
			a = pkt[k];
			break;
		case BPF_LD | BPF_H | BPF_ABS:
			if (k >= len || len - k < 2)
				return 0;
			a = (uint32_t)pkt[k] << 8 | pkt[k + 1];
			break;
		case BPF_LD | BPF_W | BPF_ABS:
			if (k >= len || len - k < 4)
				return 0;
			a = (uint32_t)pkt[k] << 24 | (uint32_t)pkt[k + 1] << 16 | (uint32_t)pkt[k + 2] << 8 | pkt[k + 3];
			break;
		case BPF_LD | BPF_W | BPF_LEN:
			a = len;
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			pc += a == k ? f->jt : f->jf;
			break;
		case BPF_JMP | BPF_JGE | BPF_K:
			pc += a >= k ? f->jt : f->jf;
			break;
		case BPF_JMP | BPF_JGT | BPF_K:
			pc += a > k ? f->jt : f->jf;
			break;
		case BPF_RET | BPF_K:
			return k;
		default:
			fail_msg("opcode %#x at %zu not modelled", f->code, pc - 1);
		}
	}
}

/* Structural checks the kernel's verifier makes: known opcodes, every jump lands inside the program,
 * and the last instruction returns. */
static void check_program(const struct sock_filter *prog, size_t n)
{
	assert_true(n > 0 && n <= BPF_MAXINSNS);
	for (size_t i = 0; i < n; i++) {
		const struct sock_filter *f = &prog[i];
		switch (f->code) {
		case BPF_JMP | BPF_JEQ | BPF_K:
		case BPF_JMP | BPF_JGE | BPF_K:
		case BPF_JMP | BPF_JGT | BPF_K:
			assert_true(i + 1 + f->jt < n);
			assert_true(i + 1 + f->jf < n);
			break;
		case BPF_LD | BPF_B | BPF_ABS:
		case BPF_LD | BPF_H | BPF_ABS:
		case BPF_LD | BPF_W | BPF_ABS:
		case BPF_LD | BPF_W | BPF_LEN:
		case BPF_RET | BPF_K:
			assert_int_equal(f->jt, 0);
			assert_int_equal(f->jf, 0);
			break;
		default:
			fail_msg("unexpected opcode %#x at %zu", f->code, i);
		}
	}
	assert_int_equal(prog[n - 1].code, BPF_RET | BPF_K);
}

/* The kernel itself must accept the program; attaching it to a Unix socket needs no privilege. */
static void check_kernel_accepts(const struct sock_filter *prog, size_t n)
{
	struct sock_fprog fp = { .len = (unsigned short)n, .filter = (struct sock_filter *)prog };
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)), 0);
	close(fd);
}

/* IPv4 VIPs 3 apart from VIP_BASE + 1 into vips (network order) and their IPv4-mapped form into as. */
static size_t build(uint32_t *vips, size_t n, struct sock_filter *prog)
{
	struct ipaddr as[256];

	assert_true(n <= 256);
	for (size_t i = 0; i < n; i++) {
		vips[i] = htonl(VIP_BASE + 1 + (uint32_t)i * 3);
		as[i] = ipaddr_from_v4(vips[i]);
	}
	size_t len = filter_build(as, n, prog, PROG_CAP);
	assert_int_not_equal(len, 0);
	check_program(prog, len);
	check_kernel_accepts(prog, len);
	return len;
}

/* n IPv6 VIPs into vips[from..]: 2001:db8:k::k*5+1 and around, so they differ in every word. */
static void ip6_vips(struct ipaddr *vips, size_t n, size_t from)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t k = (uint32_t)i;
		vips[from + i].w[0] = htonl(0x20010db8);
		vips[from + i].w[1] = htonl(k << 16 | 0x100);
		vips[from + i].w[2] = htonl(k * 0x10001u);
		vips[from + i].w[3] = htonl(k * 5 + 1);
	}
}

static int is_vip6(const struct ipaddr *vips, size_t n, const uint8_t *dst)
{
	for (size_t i = 0; i < n; i++)
		if (!ipaddr_is_v4(&vips[i]) && memcmp(vips[i].b, dst, 16) == 0)
			return 1;
	return 0;
}

/* An IPv6 frame of exactly len bytes to dst, next header nh, ICMPv6 type (if it fits) icmp_type. */
static uint32_t run6(const struct sock_filter *prog, size_t n, uint32_t len, const struct ipaddr *dst, uint8_t nh,
		     uint8_t icmp_type, uint8_t pkttype)
{
	uint8_t *b = malloc(len ? len : 1);
	uint8_t full[14 + 40 + 1];
	uint32_t r;

	memset(full, 0x5a, sizeof(full));
	full[12] = 0x86;
	full[13] = 0xdd;
	full[14] = 0x60;
	full[14 + 6] = nh;
	full[14 + 7] = 255;
	memcpy(full + 14 + 24, dst->b, 16);
	full[14 + 40] = icmp_type;
	memset(b, 0, len ? len : 1);
	memcpy(b, full, len < sizeof(full) ? len : sizeof(full));
	r = bpf_run(prog, n, b, len, pkttype);
	free(b);
	return r;
}

static size_t build6(struct ipaddr *vips, size_t n4, size_t n6, struct sock_filter *prog)
{
	for (size_t i = 0; i < n4; i++)
		vips[i] = ipaddr_from_v4(htonl(VIP_BASE + 1 + (uint32_t)i * 3));
	ip6_vips(vips, n6, n4);
	size_t len = filter_build(vips, n4 + n6, prog, PROG_CAP);
	assert_int_equal(len, 24 + n4 + 9 * n6);
	check_program(prog, len);
	check_kernel_accepts(prog, len);
	return len;
}

static void frame(uint8_t *b, uint32_t len, uint16_t ethertype, uint32_t daddr)
{
	memset(b, 0x5a, len);
	if (len >= 14) {
		b[12] = (uint8_t)(ethertype >> 8);
		b[13] = (uint8_t)ethertype;
	}
	if (len >= 34 && ethertype == 0x0800) {
		b[14] = 0x45;
		memcpy(b + 30, &daddr, 4);
	}
}

/* Runs the program on a heap frame of exactly len bytes. */
static uint32_t run(const struct sock_filter *prog, size_t n, uint32_t len, uint16_t ethertype, uint32_t daddr,
		    uint8_t pkttype)
{
	uint8_t *b = malloc(len ? len : 1);
	uint32_t r;

	frame(b, len, ethertype, daddr);
	r = bpf_run(prog, n, b, len, pkttype);
	free(b);
	return r;
}

static const uint8_t our_types[] = { PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST };

static void check_vips(size_t nv)
{
	uint32_t vips[200];
	struct sock_filter prog[PROG_CAP];
	size_t n = build(vips, nv, prog);

	assert_int_equal(n, 24 + nv);
	for (size_t t = 0; t < sizeof(our_types); t++) {
		for (size_t i = 0; i < nv; i++) {
			assert_int_not_equal(run(prog, n, 60, 0x0800, vips[i], our_types[t]), 0);
			assert_int_not_equal(run(prog, n, 34, 0x0800, vips[i], our_types[t]), 0);
			assert_int_not_equal(run(prog, n, 1514, 0x0800, vips[i], our_types[t]), 0);
			/* Each neighbouring address (VIPs are 3 apart) is not a VIP. */
			assert_int_equal(run(prog, n, 60, 0x0800, htonl(ntohl(vips[i]) + 1), our_types[t]), 0);
			assert_int_equal(run(prog, n, 60, 0x0800, htonl(ntohl(vips[i]) - 1), our_types[t]), 0);
			/* A VIP's address in the wrong byte order is another address. */
			if (ntohl(vips[i]) != vips[i])
				assert_int_equal(run(prog, n, 60, 0x0800, ntohl(vips[i]), our_types[t]), 0);
			/* Even for a VIP, a frame a bridge floods to us is for another host. */
			assert_int_equal(run(prog, n, 60, 0x0800, vips[i], PACKET_OTHERHOST), 0);
		}
		assert_int_equal(run(prog, n, 60, 0x0800, htonl(0x0a000001u), our_types[t]), 0);
		assert_int_equal(run(prog, n, 60, 0x0800, 0, our_types[t]), 0);
		assert_int_equal(run(prog, n, 60, 0x0800, 0xffffffffu, our_types[t]), 0);
	}
}

static void test_one_vip(void **state)
{
	check_vips(1);
}

static void test_three_vips(void **state)
{
	check_vips(3);
}

static void test_64_vips(void **state)
{
	check_vips(64);
}

static void test_200_vips(void **state)
{
	check_vips(200);
}

/* With no VIP configured, no IPv4 frame long enough to carry an address gets through. */
static void test_no_vips(void **state)
{
	struct sock_filter prog[PROG_CAP];
	size_t n = filter_build(NULL, 0, prog, PROG_CAP);

	assert_int_equal(n, 24);
	check_program(prog, n);
	check_kernel_accepts(prog, n);
	assert_int_equal(run(prog, n, 60, 0x0800, htonl(VIP_BASE + 1), PACKET_HOST), 0);
	assert_int_not_equal(run(prog, n, 60, 0x0806, 0, PACKET_BROADCAST), 0);
	assert_int_not_equal(run(prog, n, 20, 0x0800, 0, PACKET_HOST), 0);
}

static void test_arp(void **state)
{
	uint32_t vips[3];
	struct sock_filter prog[PROG_CAP];
	size_t n = build(vips, 3, prog);

	for (size_t t = 0; t < sizeof(our_types); t++) {
		assert_int_not_equal(run(prog, n, 42, 0x0806, 0, our_types[t]), 0);
		assert_int_not_equal(run(prog, n, 60, 0x0806, 0, our_types[t]), 0);
		/* Even a runt ARP gets through; lbd counts it malformed. */
		assert_int_not_equal(run(prog, n, 14, 0x0806, 0, our_types[t]), 0);
	}
	assert_int_equal(run(prog, n, 42, 0x0806, 0, PACKET_OTHERHOST), 0);
}

/* IPv4 frames shorter than Ethernet + a minimal IP header are let through so lbd can count them. */
static void test_short_ipv4(void **state)
{
	uint32_t vips[3];
	struct sock_filter prog[PROG_CAP];
	size_t n = build(vips, 3, prog);

	for (uint32_t len = 14; len < 34; len++) {
		assert_int_not_equal(run(prog, n, len, 0x0800, 0, PACKET_HOST), 0);
		assert_int_equal(run(prog, n, len, 0x0800, 0, PACKET_OTHERHOST), 0);
	}
	/* Too short for an ethertype: the kernel drops it at the first out-of-bounds load. */
	for (uint32_t len = 0; len < 14; len++)
		assert_int_equal(run(prog, n, len, 0x0800, 0, PACKET_HOST), 0);
}

static void test_vlan(void **state)
{
	uint32_t vips[3];
	struct sock_filter prog[PROG_CAP];
	size_t n = build(vips, 3, prog);

	for (size_t t = 0; t < sizeof(our_types); t++) {
		assert_int_not_equal(run(prog, n, 64, 0x8100, 0, our_types[t]), 0);
		assert_int_not_equal(run(prog, n, 64, 0x88a8, 0, our_types[t]), 0);
		assert_int_not_equal(run(prog, n, 14, 0x8100, 0, our_types[t]), 0);
	}
	assert_int_equal(run(prog, n, 64, 0x8100, 0, PACKET_OTHERHOST), 0);
	assert_int_equal(run(prog, n, 64, 0x88a8, 0, PACKET_OTHERHOST), 0);
}

static void test_other_ethertypes(void **state)
{
	uint32_t vips[3];
	struct sock_filter prog[PROG_CAP];
	size_t n = build(vips, 3, prog);

	assert_int_equal(run(prog, n, 74, 0x86dd, 0, PACKET_HOST), 0);       /* IPv6, to no VIP */
	assert_int_equal(run(prog, n, 60, 0x8035, 0, PACKET_BROADCAST), 0);  /* RARP */
	assert_int_equal(run(prog, n, 60, 0x88cc, 0, PACKET_MULTICAST), 0);  /* LLDP */
	assert_int_equal(run(prog, n, 60, 0x0000, 0, PACKET_HOST), 0);
	for (uint32_t et = 0; et <= 0xffff; et++) {
		uint32_t r = run(prog, n, 60, (uint16_t)et, vips[1], PACKET_HOST);
		int want = et == 0x0806 || et == 0x8100 || et == 0x88a8 || et == 0x0800;
		assert_int_equal(r != 0, want);
	}
}

/* What the filter must pass: the rules of the file's header comment, written out in C. */
static int want_frame(const uint8_t *b, uint32_t len, uint8_t pkttype, const struct ipaddr *vips, size_t nv)
{
	uint16_t et;

	if (len < 14 || pkttype == PACKET_OTHERHOST)
		return 0;
	et = (uint16_t)(b[12] << 8 | b[13]);
	if (et == 0x0806 || et == 0x8100 || et == 0x88a8)
		return 1;
	if (et == 0x0800) {
		if (len < 34)
			return 1;
		for (size_t i = 0; i < nv; i++)
			if (ipaddr_is_v4(&vips[i]) && memcmp(b + 30, &vips[i].w[3], 4) == 0)
				return 1;
		return 0;
	}
	if (et != 0x86dd)
		return 0;
	if (len < 54 || is_vip6(vips, nv, b + 38))
		return 1;
	return len > 54 && b[20] == 58 && b[54] >= 133 && b[54] <= 137;
}

/* Random frames of random length, IPv4 and IPv6 VIPs side by side: only what the rules allow gets through. */
static void test_random_frames(void **state)
{
	struct ipaddr vips[6];
	struct sock_filter prog[PROG_CAP];
	size_t n = build6(vips, 3, 3, prog);
	uint32_t seed = 12345;

	for (int i = 0; i < 60000; i++) {
		uint8_t b[1600];
		uint32_t len, r;
		uint8_t pkttype;
		seed = seed * 1103515245u + 12345u;
		len = i % 3 ? (seed >> 8) % 1600 : (seed >> 8) % 80;
		pkttype = (uint8_t)(seed >> 28) % 5;
		for (uint32_t j = 0; j < len; j++) {
			seed = seed * 1103515245u + 12345u;
			b[j] = (uint8_t)(seed >> 16);
		}
		if (len >= 14 && i % 2)
			b[12] = 0x08, b[13] = (uint8_t)(i % 4 == 1 ? 0x00 : 0x06);
		if (len >= 14 && i % 4 == 2)
			b[12] = 0x86, b[13] = 0xdd;
		if (len >= 34 && i % 8 == 1)
			memcpy(b + 30, &vips[i % 3].w[3], 4);
		if (len >= 54 && i % 8 == 2)
			memcpy(b + 38, vips[3 + i % 3].b, 16 - (size_t)(i % 16 == 10));  /* sometimes all but a byte */
		if (len >= 21 && i % 16 == 6)
			b[20] = 58;
		if (len >= 55 && i % 32 == 6)
			b[54] = (uint8_t)(130 + i % 10);
		r = bpf_run(prog, n, b, len, pkttype);
		assert_int_equal(r != 0, want_frame(b, len, pkttype, vips, 6));
	}
}

static void check_vips6(size_t n4, size_t n6)
{
	struct ipaddr vips[LBD_MAX_VIPS];
	struct sock_filter prog[PROG_CAP];
	size_t n = build6(vips, n4, n6, prog);

	for (size_t t = 0; t < sizeof(our_types); t++) {
		for (size_t i = n4; i < n4 + n6; i++) {
			assert_int_not_equal(run6(prog, n, 54, &vips[i], 6, 0, our_types[t]), 0);
			assert_int_not_equal(run6(prog, n, 74, &vips[i], 17, 0, our_types[t]), 0);
			assert_int_not_equal(run6(prog, n, 1514, &vips[i], 44, 0, our_types[t]), 0);
			/* Echo and errors to a VIP, whatever their type. */
			assert_int_not_equal(run6(prog, n, 70, &vips[i], 58, 128, our_types[t]), 0);
			assert_int_not_equal(run6(prog, n, 70, &vips[i], 58, 2, our_types[t]), 0);
			/* One bit off in any word, or one off in any word, is another address. */
			for (int w = 0; w < 4; w++) {
				for (int d = 0; d < 3; d++) {
					struct ipaddr other = vips[i];
					uint32_t h = ntohl(other.w[w]);
					other.w[w] = htonl(d == 0 ? h + 1 : d == 1 ? h - 1 : h ^ 0x80000000u);
					assert_int_equal(run6(prog, n, 74, &other, 6, 0, our_types[t]) != 0,
							 is_vip6(vips, n4 + n6, other.b));
				}
			}
			/* The VIP's last word as an IPv4 destination is no VIP. */
			assert_int_equal(run(prog, n, 60, 0x0800, vips[i].w[3], our_types[t]), 0);
			assert_int_equal(run6(prog, n, 74, &vips[i], 6, 0, PACKET_OTHERHOST), 0);
		}
		/* An IPv4 VIP in its mapped form is no IPv6 destination of ours. */
		for (size_t i = 0; i < n4; i++)
			assert_int_equal(run6(prog, n, 74, &vips[i], 6, 0, our_types[t]), 0);
	}
}

static void test_ipv6_one_vip(void **state)
{
	check_vips6(0, 1);
}

static void test_ipv6_mixed_vips(void **state)
{
	check_vips6(3, 5);
	check_vips6(32, 32);
}

static void test_ipv6_64_vips(void **state)
{
	check_vips6(0, 64);
}

/* IPv6 frames shorter than Ethernet + the fixed header are let through so lbd can count them. */
static void test_short_ipv6(void **state)
{
	struct ipaddr vips[2], none;
	struct sock_filter prog[PROG_CAP];
	size_t n = build6(vips, 1, 1, prog);

	memset(&none, 0x33, sizeof(none));
	for (uint32_t len = 14; len < 54; len++) {
		assert_int_not_equal(run6(prog, n, len, &none, 6, 0, PACKET_HOST), 0);
		assert_int_equal(run6(prog, n, len, &none, 6, 0, PACKET_OTHERHOST), 0);
	}
	assert_int_equal(run6(prog, n, 54, &none, 6, 0, PACKET_HOST), 0);
	/* ICMPv6 to another host without room for its type: no neighbour discovery, dropped. */
	assert_int_equal(run6(prog, n, 54, &none, 58, 0, PACKET_HOST), 0);
	assert_int_not_equal(run6(prog, n, 54, &vips[1], 58, 0, PACKET_HOST), 0);
}

/* Neighbour discovery reaches lbd whatever its destination: an NS for a VIP goes to the VIP's
 * solicited-node multicast address, an NA from a backend to lbd's own address or to all-nodes. */
static void test_neighbour_discovery(void **state)
{
	static const char *const dsts[] = { "ff02::1:ff00:101", "ff02::1", "fe80::1", "2001:db8::11", "ff02::2" };
	struct ipaddr vips[2];
	struct sock_filter prog[PROG_CAP];
	size_t n = build6(vips, 1, 1, prog);

	for (size_t d = 0; d < sizeof(dsts) / sizeof(dsts[0]); d++) {
		struct ipaddr dst;
		assert_int_equal(ipaddr_parse(dsts[d], &dst), 0);
		for (size_t t = 0; t < sizeof(our_types); t++) {
			for (unsigned type = 0; type < 256; type++) {
				int nd = type >= 133 && type <= 137;
				assert_int_equal(run6(prog, n, 86, &dst, 58, (uint8_t)type, our_types[t]) != 0, nd);
			}
			/* Not ICMPv6 right after the fixed header (MLD comes after a hop-by-hop header). */
			assert_int_equal(run6(prog, n, 86, &dst, 0, 135, our_types[t]), 0);
			assert_int_equal(run6(prog, n, 86, &dst, 17, 135, our_types[t]), 0);
		}
		assert_int_equal(run6(prog, n, 86, &dst, 58, 135, PACKET_OTHERHOST), 0);
	}
}

static void test_capacity(void **state)
{
	struct ipaddr vips[201];
	struct sock_filter prog[PROG_CAP];

	for (size_t i = 0; i < 201; i++)
		vips[i] = ipaddr_from_v4(htonl(VIP_BASE + (uint32_t)i));
	/* Exactly enough room, then one short: 24 + 1 per IPv4 VIP + 9 per IPv6 VIP. */
	assert_int_equal(filter_build(vips, 3, prog, 27), 27);
	assert_int_equal(filter_build(vips, 3, prog, 26), 0);
	assert_int_equal(filter_build(vips, 0, prog, 23), 0);
	assert_int_equal(filter_build(vips, 1, prog, 0), 0);
	/* More IPv4 VIPs than 8-bit jump offsets can span. */
	assert_int_equal(filter_build(vips, 200, prog, PROG_CAP), 224);
	assert_int_equal(filter_build(vips, 201, prog, PROG_CAP), 0);
	/* IPv6 VIPs have no such limit, only the kernel's BPF_MAXINSNS. */
	ip6_vips(vips, 64, 0);
	assert_int_equal(filter_build(vips, 64, prog, PROG_CAP), 24 + 9 * 64);
	assert_int_equal(filter_build(vips, 64, prog, 24 + 9 * 64 - 1), 0);
	for (size_t i = 0; i < 3; i++)
		vips[i] = ipaddr_from_v4(htonl(VIP_BASE + (uint32_t)i));
	ip6_vips(vips, 10, 3);
	assert_int_equal(filter_build(vips, 13, prog, PROG_CAP), 24 + 3 + 9 * 10);
	static struct ipaddr many[460];
	static struct sock_filter big[4200];
	ip6_vips(many, 460, 0);
	assert_int_equal(filter_build(many, 452, big, 4200), 24 + 9 * 452);
	assert_int_equal(filter_build(many, 453, big, 4200), 0);
}

/* A short cap must not be written past. */
static void test_capacity_no_overrun(void **state)
{
	struct ipaddr vips[64];
	struct sock_filter *prog;

	for (int mixed = 0; mixed < 2; mixed++) {
		size_t need = mixed ? 24 + 32 + 9 * 32 : 88;

		for (size_t i = 0; i < 64; i++)
			vips[i] = ipaddr_from_v4(htonl(VIP_BASE + (uint32_t)i));
		if (mixed)
			ip6_vips(vips, 32, 32);
		for (size_t cap = 0; cap <= need + 4; cap++) {
			prog = malloc((cap ? cap : 1) * sizeof(*prog));
			size_t n = filter_build(vips, 64, prog, cap);
			assert_int_equal(n, cap >= need ? need : 0);
			free(prog);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_vip),
		cmocka_unit_test(test_three_vips),
		cmocka_unit_test(test_64_vips),
		cmocka_unit_test(test_200_vips),
		cmocka_unit_test(test_no_vips),
		cmocka_unit_test(test_arp),
		cmocka_unit_test(test_short_ipv4),
		cmocka_unit_test(test_vlan),
		cmocka_unit_test(test_other_ethertypes),
		cmocka_unit_test(test_random_frames),
		cmocka_unit_test(test_ipv6_one_vip),
		cmocka_unit_test(test_ipv6_mixed_vips),
		cmocka_unit_test(test_ipv6_64_vips),
		cmocka_unit_test(test_short_ipv6),
		cmocka_unit_test(test_neighbour_discovery),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_capacity_no_overrun),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
