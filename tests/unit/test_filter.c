/* Unit tests for lbd/filter.c: the classic BPF program of the RX socket runs here on a small interpreter of
 * the opcodes it uses, with the kernel's rule that a load past the end of the packet drops it, and must
 * pass exactly ARP, VLAN-tagged frames, IPv4 to a VIP and IPv4 too short to say, never other hosts' frames. */
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

#include "lbd/lbd.h"

#define PROG_CAP 256
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

static size_t build(uint32_t *vips, size_t n, struct sock_filter *prog)
{
	for (size_t i = 0; i < n; i++)
		vips[i] = htonl(VIP_BASE + 1 + (uint32_t)i * 3);
	size_t len = filter_build(vips, n, prog, PROG_CAP);
	assert_int_not_equal(len, 0);
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

	assert_int_equal(n, 12 + nv);
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

	assert_int_equal(n, 12);
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
	uint32_t seed = 12345;

	assert_int_equal(run(prog, n, 74, 0x86dd, 0, PACKET_HOST), 0);       /* IPv6 */
	assert_int_equal(run(prog, n, 60, 0x8035, 0, PACKET_BROADCAST), 0);  /* RARP */
	assert_int_equal(run(prog, n, 60, 0x88cc, 0, PACKET_MULTICAST), 0);  /* LLDP */
	assert_int_equal(run(prog, n, 60, 0x0000, 0, PACKET_HOST), 0);
	for (uint32_t et = 0; et <= 0xffff; et++) {
		uint32_t r = run(prog, n, 60, (uint16_t)et, vips[1], PACKET_HOST);
		int want = et == 0x0806 || et == 0x8100 || et == 0x88a8 || et == 0x0800;
		assert_int_equal(r != 0, want);
	}
	/* Random frames of random length: only what the rules above allow gets through. */
	for (int i = 0; i < 20000; i++) {
		uint8_t b[1600];
		uint32_t len, r;
		uint8_t pkttype;
		seed = seed * 1103515245u + 12345u;
		len = (seed >> 8) % 1600;
		pkttype = (uint8_t)(seed >> 28) % 5;
		for (uint32_t j = 0; j < len; j++) {
			seed = seed * 1103515245u + 12345u;
			b[j] = (uint8_t)(seed >> 16);
		}
		if (len >= 14 && i % 2)
			b[12] = 0x08, b[13] = (uint8_t)(i % 4 == 1 ? 0x00 : 0x06);
		if (len >= 34 && i % 8 == 1)
			memcpy(b + 30, &vips[i % 3], 4);
		r = bpf_run(prog, n, b, len, pkttype);
		uint16_t et = len >= 14 ? (uint16_t)(b[12] << 8 | b[13]) : 0;
		int vip = len >= 34 && (!memcmp(b + 30, &vips[0], 4) || !memcmp(b + 30, &vips[1], 4) ||
					!memcmp(b + 30, &vips[2], 4));
		int want = len >= 14 && pkttype != PACKET_OTHERHOST &&
			   (et == 0x0806 || et == 0x8100 || et == 0x88a8 || (et == 0x0800 && (len < 34 || vip)));
		assert_int_equal(r != 0, want);
	}
}

static void test_capacity(void **state)
{
	uint32_t vips[201];
	struct sock_filter prog[PROG_CAP];

	for (size_t i = 0; i < 201; i++)
		vips[i] = htonl(VIP_BASE + (uint32_t)i);
	/* Exactly enough room, then one short. */
	assert_int_equal(filter_build(vips, 3, prog, 15), 15);
	assert_int_equal(filter_build(vips, 3, prog, 14), 0);
	assert_int_equal(filter_build(vips, 0, prog, 11), 0);
	assert_int_equal(filter_build(vips, 1, prog, 0), 0);
	/* More VIPs than 8-bit jump offsets can span. */
	assert_int_equal(filter_build(vips, 200, prog, PROG_CAP), 212);
	assert_int_equal(filter_build(vips, 201, prog, PROG_CAP), 0);
	assert_int_equal(filter_build(vips, 1000, prog, 4096), 0);
}

/* A short cap must not be written past. */
static void test_capacity_no_overrun(void **state)
{
	uint32_t vips[64];
	struct sock_filter *prog;

	for (size_t i = 0; i < 64; i++)
		vips[i] = htonl(VIP_BASE + (uint32_t)i);
	for (size_t cap = 0; cap <= 80; cap++) {
		prog = malloc((cap ? cap : 1) * sizeof(*prog));
		size_t n = filter_build(vips, 64, prog, cap);
		assert_int_equal(n, cap >= 76 ? 76 : 0);
		free(prog);
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
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_capacity_no_overrun),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
