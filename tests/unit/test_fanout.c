/* The fanout program (filter.c) run by the kernel's own classic-BPF interpreter must pick the same
 * worker as filter_fanout_index() in C, for IPv4 and IPv6: the main thread relies on that to put flows
 * from the peer into the table of the worker that will see their packets. The program is attached as a
 * socket filter to a Unix datagram socket (no privileges needed); its return value, offset by 1000,
 * becomes the received length. */
#include <arpa/inet.h>
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

#define PAD 1400

struct kern {
	int tx, rx;
};

/* Loads the program for n workers, adjusted for a socket filter: skb->protocol is 0 on a Unix socket,
 * so the protocol check loads the constant `proto` (0x0800 or 0x86dd) instead, and `ret a` returns
 * 1000 + the index. */
static void kern_open_proto(struct kern *k, unsigned n, uint32_t proto)
{
	struct sock_filter prog[160];
	size_t len = filter_fanout_build(n, prog, 158);
	int sv[2];

	assert_true(len > 0);
	prog[0] = (struct sock_filter){ BPF_LD | BPF_IMM, 0, 0, proto };
	for (size_t i = 0; i < len; i++) {
		if (prog[i].code == (BPF_RET | BPF_A)) {
			/* shift everything after by one to make room for `add #1000` */
			memmove(&prog[i + 1], &prog[i], (len - i) * sizeof(prog[0]));
			prog[i] = (struct sock_filter){ BPF_ALU | BPF_ADD | BPF_K, 0, 0, 1000 };
			len++;
			/* jumps over the insertion point from before it must skip one more */
			for (size_t j = 0; j < i; j++) {
				unsigned code = prog[j].code;
				if (BPF_CLASS(code) != BPF_JMP)
					continue;
				if (BPF_OP(code) == BPF_JA) {
					if (j + 1 + prog[j].k > i - 1)
						prog[j].k++;
				} else {
					if (j + 1 + prog[j].jt > i - 1)
						prog[j].jt++;
					if (j + 1 + prog[j].jf > i - 1)
						prog[j].jf++;
				}
			}
			break;
		}
	}
	struct sock_fprog fp = { .len = (unsigned short)len, .filter = prog };
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)), 0);
	k->tx = sv[0];
	k->rx = sv[1];
}

static void kern_open(struct kern *k, unsigned n)
{
	kern_open_proto(k, n, 0x0800);
}

static int kern_index(struct kern *k, const uint8_t *ip, size_t len)
{
	uint8_t buf[PAD];
	uint8_t out[PAD];

	memset(buf, 0, sizeof(buf));
	memcpy(buf, ip, len);
	assert_int_equal(send(k->tx, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	ssize_t r = recv(k->rx, out, sizeof(out), MSG_DONTWAIT);
	assert_true(r >= 1000);
	return (int)r - 1000;
}

static void kern_close(struct kern *k)
{
	close(k->tx);
	close(k->rx);
}

static size_t ip_header(uint8_t *p, uint8_t proto, uint32_t s, uint32_t d, uint16_t frag, unsigned ihl)
{
	memset(p, 0, ihl * 4);
	p[0] = (uint8_t)(0x40 | ihl);
	p[6] = (uint8_t)(frag >> 8);
	p[7] = (uint8_t)frag;
	p[8] = 64;
	p[9] = proto;
	uint32_t sn = htonl(s), dn = htonl(d);
	memcpy(p + 12, &sn, 4);
	memcpy(p + 16, &dn, 4);
	return ihl * 4;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* The C choice for host-order IPv4 addresses, through their IPv4-mapped form. */
static unsigned index4(uint32_t s, uint32_t d, uint16_t sp, uint16_t dp, unsigned n)
{
	struct ipaddr a = ipaddr_from_v4(htonl(s)), b = ipaddr_from_v4(htonl(d));

	return filter_fanout_index(&a, &b, sp, dp, n);
}

/* The function IPv4 used before IPv6, on host-order addresses: an IPv4-mapped address must keep it, so
 * a mixed-version pair or a replayed sync table places IPv4 flows where it always did. */
static unsigned index4_before_ipv6(uint32_t s, uint32_t d, uint16_t sp, uint16_t dp, unsigned n)
{
	uint32_t h = s ^ d ^ ((uint32_t)sp << 16 | dp);

	h ^= h >> 16;
	h *= 0x45d9f3bu;
	h ^= h >> 16;
	return h % n;
}

static void test_ipv4_choice_unchanged(void **state)
{
	srandom(7);
	for (int i = 0; i < 100000; i++) {
		uint32_t s = (uint32_t)random() ^ (uint32_t)random() << 16, d = (uint32_t)random();
		uint16_t sp = (uint16_t)random(), dp = (uint16_t)random();
		unsigned n = 1 + (unsigned)(i % 16);
		assert_int_equal(index4(s, d, sp, dp, n), index4_before_ipv6(s, d, sp, dp, n));
	}
	assert_int_equal(index4(0xc6336401, 0xc0000264, 40000, 80, 0), 0);
}

static void test_tcp_udp_match(void **state)
{
	for (unsigned n = 2; n <= 5; n++) {
		struct kern k;
		kern_open(&k, n);
		srandom(n);
		for (int i = 0; i < 2000; i++) {
			uint8_t pkt[128];
			uint32_t s = (uint32_t)random(), d = (uint32_t)random();
			uint16_t sp = (uint16_t)random(), dp = (uint16_t)random();
			unsigned ihl = 5 + (unsigned)(i % 3);
			size_t off = ip_header(pkt, i % 2 ? 6 : 17, s, d, 0, ihl);
			put16(pkt + off, sp);
			put16(pkt + off + 2, dp);
			assert_int_equal(kern_index(&k, pkt, off + 20), index4(s, d, sp, dp, n));
		}
		kern_close(&k);
	}
}

static void test_fragments_hash_addresses_only(void **state)
{
	struct kern k;

	kern_open(&k, 4);
	for (int i = 0; i < 500; i++) {
		uint8_t pkt[64];
		uint32_t s = (uint32_t)random(), d = (uint32_t)random();
		uint16_t frag = i % 2 ? 0x2000 : (uint16_t)(1 + i % 0x1fff);   /* first with MF, or later */
		size_t off = ip_header(pkt, 17, s, d, frag, 5);
		put16(pkt + off, 1234);
		put16(pkt + off + 2, 80);
		assert_int_equal(kern_index(&k, pkt, off + 8), index4(s, d, 0, 0, 4));
	}
	kern_close(&k);
}

/* An ICMP error from a router quotes the backend's reply VIP:vport -> client:cport; it must reach
 * the worker of the flow client:cport -> VIP:vport. */
static void test_icmp_error_follows_quoted_flow(void **state)
{
	struct kern k;

	kern_open(&k, 3);
	for (int i = 0; i < 500; i++) {
		uint8_t pkt[128];
		uint32_t router = (uint32_t)random(), client = (uint32_t)random(), vip = (uint32_t)random();
		uint16_t cport = (uint16_t)random(), vport = (uint16_t)random();
		unsigned oihl = 5 + (unsigned)(i % 2), iihl = 5 + (unsigned)(i % 3);
		size_t off = ip_header(pkt, 1, router, vip, 0, oihl);
		pkt[off] = i % 3 == 0 ? 3 : i % 3 == 1 ? 11 : 12;
		size_t in = off + 8;
		size_t q = in + ip_header(pkt + in, 6, vip, client, 0, iihl);
		put16(pkt + q, vport);
		put16(pkt + q + 2, cport);
		assert_int_equal(kern_index(&k, pkt, q + 8), index4(client, vip, cport, vport, 3));
	}
	kern_close(&k);
}

static void test_other_traffic(void **state)
{
	struct kern k;
	uint8_t pkt[64];
	uint32_t s = 0xc6336401, d = 0xc0000264;

	kern_open(&k, 4);
	size_t off = ip_header(pkt, 1, s, d, 0, 5);
	pkt[off] = 8;   /* echo request: addresses only */
	assert_int_equal(kern_index(&k, pkt, off + 8), index4(s, d, 0, 0, 4));
	off = ip_header(pkt, 47, s, d, 0, 5);   /* GRE */
	assert_int_equal(kern_index(&k, pkt, off + 8), index4(s, d, 0, 0, 4));
	kern_close(&k);
	assert_int_equal(filter_fanout_build(0, (struct sock_filter[160]){ 0 }, 160), 0);
	assert_int_equal(filter_fanout_build(2, (struct sock_filter[8]){ 0 }, 8), 0);
}

/* lbd's worker.c builds the program into 128 instructions; exactly its length fits, one less does not. */
static void test_program_size(void **state)
{
	struct sock_filter prog[160];
	size_t len = filter_fanout_build(16, prog, 160);

	assert_true(len > 0 && len <= 128);
	assert_int_equal(filter_fanout_build(16, prog, len), len);
	assert_int_equal(filter_fanout_build(16, prog, len - 1), 0);
}

static struct ipaddr random_ip6(void)
{
	struct ipaddr a;

	for (int i = 0; i < 16; i++)
		a.b[i] = (uint8_t)random();
	a.b[0] = 0x20;          /* never IPv4-mapped */
	return a;
}

static size_t ip6_header(uint8_t *p, uint8_t next, const struct ipaddr *s, const struct ipaddr *d)
{
	memset(p, 0, 40);
	p[0] = 0x60;
	p[5] = 64;
	p[6] = next;
	p[7] = 64;
	memcpy(p + 8, s->b, 16);
	memcpy(p + 24, d->b, 16);
	return 40;
}

static void test_ipv6_tcp_udp_match(void **state)
{
	for (unsigned n = 2; n <= 5; n++) {
		struct kern k;
		kern_open_proto(&k, n, 0x86dd);
		srandom(100 + n);
		for (int i = 0; i < 2000; i++) {
			uint8_t pkt[128];
			struct ipaddr s = random_ip6(), d = random_ip6();
			uint16_t sp = (uint16_t)random(), dp = (uint16_t)random();
			size_t off = ip6_header(pkt, i % 2 ? 6 : 17, &s, &d);
			put16(pkt + off, sp);
			put16(pkt + off + 2, dp);
			assert_int_equal(kern_index(&k, pkt, off + 20), filter_fanout_index(&s, &d, sp, dp, n));
		}
		kern_close(&k);
	}
}

/* A fragment header, or any other extension header after the fixed header: addresses only. */
static void test_ipv6_fragments_and_extension_headers(void **state)
{
	static const uint8_t ext[] = { 44, 0, 43, 60, 135, 139, 140 };
	struct kern k;

	kern_open_proto(&k, 4, 0x86dd);
	srandom(44);
	for (int i = 0; i < 700; i++) {
		uint8_t pkt[128];
		struct ipaddr s = random_ip6(), d = random_ip6();
		size_t off = ip6_header(pkt, ext[i % sizeof(ext)], &s, &d);
		pkt[off] = i % 2 ? 17 : 6;      /* what the extension header says follows */
		put16(pkt + off + 2, (uint16_t)(i % 3 ? 1 : 0x1234));   /* fragment: offset, M */
		put16(pkt + off + 8, 1234);
		put16(pkt + off + 10, 80);
		assert_int_equal(kern_index(&k, pkt, off + 16), filter_fanout_index(&s, &d, 0, 0, 4));
	}
	kern_close(&k);
}

/* An ICMPv6 error (Packet Too Big above all) from a router quotes the backend's reply
 * VIP:vport -> client:cport; it must reach the worker of the flow client:cport -> VIP:vport. A quote of
 * anything but TCP or UDP right after its fixed header hashes on the quoted addresses. */
static void test_icmp6_error_follows_quoted_flow(void **state)
{
	struct kern k;

	kern_open_proto(&k, 3, 0x86dd);
	srandom(58);
	for (int i = 0; i < 800; i++) {
		uint8_t pkt[160];
		struct ipaddr router = random_ip6(), client = random_ip6(), vip = random_ip6();
		uint16_t cport = (uint16_t)random(), vport = (uint16_t)random();
		uint8_t quoted = i % 4 == 3 ? 44 : i % 2 ? 6 : 17;
		size_t off = ip6_header(pkt, 58, &router, &vip);
		pkt[off] = (uint8_t)(1 + i % 4);        /* unreachable, too big, time exceeded, parameter */
		size_t q = off + 8;
		q += ip6_header(pkt + q, quoted, &vip, &client);
		put16(pkt + q, vport);
		put16(pkt + q + 2, cport);
		unsigned want = quoted == 44 ? filter_fanout_index(&client, &vip, 0, 0, 3)
					     : filter_fanout_index(&client, &vip, cport, vport, 3);
		assert_int_equal(kern_index(&k, pkt, q + 8), want);
	}
	kern_close(&k);
}

/* ICMPv6 that is no error (echo, neighbour discovery, type 0) and other protocols: addresses only. */
static void test_ipv6_other_traffic(void **state)
{
	static const uint8_t types[] = { 0, 5, 127, 128, 129, 133, 135, 136, 255 };
	struct kern k;
	uint8_t pkt[128];
	struct ipaddr s, d;

	ipaddr_parse("2001:db8:1::7", &s);
	ipaddr_parse("2001:db8::100", &d);
	kern_open_proto(&k, 4, 0x86dd);
	for (size_t t = 0; t < sizeof(types); t++) {
		size_t off = ip6_header(pkt, 58, &s, &d);
		pkt[off] = types[t];
		put16(pkt + off + 4, 0x1234);
		assert_int_equal(kern_index(&k, pkt, off + 8), filter_fanout_index(&s, &d, 0, 0, 4));
	}
	size_t off = ip6_header(pkt, 132, &s, &d);      /* SCTP */
	assert_int_equal(kern_index(&k, pkt, off + 12), filter_fanout_index(&s, &d, 0, 0, 4));
	kern_close(&k);
}

/* The same flows with IPv4-mapped addresses and with IPv6 addresses spread over the workers alike. */
static void test_ipv6_spreads(void **state)
{
	unsigned count[4] = { 0 };
	struct ipaddr vip;

	ipaddr_parse("2001:db8::100", &vip);
	srandom(9);
	for (int i = 0; i < 40000; i++) {
		struct ipaddr c = random_ip6();
		count[filter_fanout_index(&c, &vip, (uint16_t)random(), 443, 4)]++;
	}
	for (int w = 0; w < 4; w++)
		assert_in_range(count[w], 9000, 11000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_udp_match),
		cmocka_unit_test(test_fragments_hash_addresses_only),
		cmocka_unit_test(test_icmp_error_follows_quoted_flow),
		cmocka_unit_test(test_other_traffic),
		cmocka_unit_test(test_ipv4_choice_unchanged),
		cmocka_unit_test(test_program_size),
		cmocka_unit_test(test_ipv6_tcp_udp_match),
		cmocka_unit_test(test_ipv6_fragments_and_extension_headers),
		cmocka_unit_test(test_icmp6_error_follows_quoted_flow),
		cmocka_unit_test(test_ipv6_other_traffic),
		cmocka_unit_test(test_ipv6_spreads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
