/* Unit tests for lbd/flow.c: table operations, the full-table limit, expiry with a fake clock, iteration,
 * TCP state tracking, the 5-tuple hash, and the memory budget of a one-million-flow table. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "lbd/flow.h"

static const struct flow_timeouts timeouts = {
	.tcp_syn_ms = 60000, .tcp_est_ms = 900000, .tcp_fin_ms = 120000, .udp_ms = 300000, .other_ms = 30000,
};

/* Distinct keys for distinct i. */
static struct flow_key key_n(uint32_t i)
{
	struct flow_key k;

	memset(&k, 0, sizeof(k));
	k.saddr = ipaddr_from_v4(htonl(0x0a000000u + (i >> 16)));
	k.daddr = ipaddr_from_v4(htonl(0xc6336401u));
	k.sport = htons((uint16_t)i);
	k.dport = htons(443);
	k.proto = 6;
	return k;
}

static struct flow *insert_n(struct flow_table *t, uint32_t i, uint8_t state, uint64_t now)
{
	struct flow_key k = key_n(i);

	return flow_insert(t, &k, (uint16_t)i, state, now);
}

static struct flow *lookup_n(struct flow_table *t, uint32_t i)
{
	struct flow_key k = key_n(i);

	return flow_lookup(t, &k);
}

static void test_create_bad(void **state)
{
	errno = 0;
	assert_null(flow_create(0, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(flow_create(FLOW_MAX_LIMIT + 1, 1));
	assert_int_equal(errno, EINVAL);
	flow_destroy(NULL);
}

static void test_insert_lookup_delete(void **state)
{
	struct flow_table *t = flow_create(100, 0);
	struct flow_key k = key_n(1), other;
	struct flow *f, *g, foreign;

	assert_int_equal(flow_count(t), 0);
	assert_int_equal(flow_max(t), 100);
	assert_null(flow_lookup(t, &k));

	f = flow_insert(t, &k, 7, FLOW_TCP_SYN, 1000);
	assert_non_null(f);
	assert_int_equal(flow_count(t), 1);
	assert_ptr_equal(flow_lookup(t, &k), f);
	assert_int_equal(f->backend, 7);
	assert_int_equal(f->state, FLOW_TCP_SYN);
	assert_int_equal(f->flags, 0);
	flow_key_of(t, f, &other);
	assert_true(ipaddr_eq(&other.saddr, &k.saddr));
	assert_true(ipaddr_eq(&other.daddr, &k.daddr));
	assert_int_equal(other.sport, k.sport);
	assert_int_equal(other.dport, k.dport);
	assert_int_equal(other.proto, k.proto);

	/* Each field is part of the key. */
	other = k;
	other.proto = 17;
	assert_null(flow_lookup(t, &other));
	other = k;
	other.dport = htons(444);
	assert_null(flow_lookup(t, &other));
	other = k;
	other.daddr.w[3] ^= 1;
	assert_null(flow_lookup(t, &other));

	/* Padding bytes of the caller's key do not matter. */
	memset(&other, 0xa5, sizeof(other));
	other.saddr = k.saddr;
	other.daddr = k.daddr;
	other.sport = k.sport;
	other.dport = k.dport;
	other.proto = k.proto;
	assert_ptr_equal(flow_lookup(t, &other), f);

	/* Inserting a present key updates it in place and keeps the caller's flags. */
	f->flags = 0x3;
	g = flow_insert(t, &k, 9, FLOW_TCP_EST, 5000);
	assert_ptr_equal(g, f);
	assert_int_equal(flow_count(t), 1);
	assert_int_equal(f->backend, 9);
	assert_int_equal(f->state, FLOW_TCP_EST);
	assert_int_equal(f->flags, 0x3);
	assert_int_equal(flow_idle_ms(t, f, 5000), 0);

	flow_delete(t, f);
	assert_int_equal(flow_count(t), 0);
	assert_null(flow_lookup(t, &k));
	flow_delete(t, f);              /* already free: nothing happens */
	assert_int_equal(flow_count(t), 0);
	flow_delete(t, &foreign);       /* not from this table: nothing happens */
	assert_int_equal(flow_count(t), 0);
	flow_destroy(t);
}

/* Every flow on one chain: unlinking from its head, middle and tail must keep the others reachable. The
 * chains are keyed, so the test asks the table which keys share one. */
static void test_one_chain(void **state)
{
	struct flow_table *t = flow_create(64, 0);
	struct flow_key keys[64];
	uint32_t n = 0, chain;

	keys[0] = key_n(0);
	chain = flow_chain(t, &keys[0]);
	for (uint32_t i = 0; n < 64 && i < 1000000; i++) {
		struct flow_key k = key_n(i);

		if (flow_chain(t, &k) == chain)
			keys[n++] = k;
	}
	assert_int_equal(n, 64);
	for (uint32_t i = 0; i < 64; i++)
		assert_non_null(flow_insert(t, &keys[i], (uint16_t)i, FLOW_UDP, 0));
	for (uint32_t i = 0; i < 64; i += 3)
		flow_delete(t, flow_lookup(t, &keys[i]));
	for (uint32_t i = 0; i < 64; i++) {
		struct flow *f = flow_lookup(t, &keys[i]);

		if (i % 3 == 0) {
			assert_null(f);
		} else {
			assert_non_null(f);
			assert_int_equal(f->backend, i);
		}
	}
	assert_int_equal(flow_count(t), 64 - 22);
	flow_destroy(t);
}

/* Hash flooding (issue 12): keys that all share a chain under the public flow_hash (what an attacker can
 * compute offline) spread over the chains of a table, and two tables (two lbd processes) put the same
 * key into different chains. */
static void test_chains_are_keyed(void **state)
{
	enum { HEADS = 1024, WANT = 256 };
	struct flow_table *a = flow_create(HEADS, 0), *b = flow_create(HEADS, 0);
	static uint32_t per_chain[HEADS];
	struct flow_key k0 = key_n(0), keys[WANT];
	uint32_t n = 0, same = 0, max = 0;

	for (uint32_t i = 1; n < WANT && i < 50000000; i++) {
		struct flow_key k = key_n(i);

		if ((flow_hash(&k) & (HEADS - 1)) == (flow_hash(&k0) & (HEADS - 1)))
			keys[n++] = k;
	}
	assert_int_equal(n, WANT);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t c = flow_chain(a, &keys[i]);

		if (++per_chain[c] > max)
			max = per_chain[c];
		same += c == flow_chain(b, &keys[i]);
		assert_non_null(flow_insert(a, &keys[i], 1, FLOW_TCP_SYN, 0));
		assert_non_null(flow_lookup(a, &keys[i]));
	}
	/* 256 keys over 1024 chains: a chain of 6 has odds below 1e-4; agreeing on over 8 of 256 chains
	 * (expected 0.25) below 1e-9. */
	assert_true(max <= 6);
	assert_true(same <= 8);
	flow_destroy(a);
	flow_destroy(b);
}

static void test_full_table(void **state)
{
	struct flow_table *t = flow_create(1000, 0);
	struct flow *f;

	for (uint32_t i = 0; i < 1000; i++)
		assert_non_null(insert_n(t, i, FLOW_TCP_EST, 0));
	assert_int_equal(flow_count(t), 1000);

	errno = 0;
	assert_null(insert_n(t, 1000, FLOW_TCP_SYN, 0));
	assert_int_equal(errno, ENOSPC);
	assert_null(insert_n(t, 1001, FLOW_TCP_SYN, 0));
	assert_int_equal(flow_count(t), 1000);
	assert_null(lookup_n(t, 1000));

	/* A present key can still be updated when full. */
	f = insert_n(t, 500, FLOW_TCP_FIN, 0);
	assert_non_null(f);
	assert_int_equal(f->state, FLOW_TCP_FIN);

	/* Deleting frees exactly one slot. */
	flow_delete(t, lookup_n(t, 10));
	assert_int_equal(flow_count(t), 999);
	assert_non_null(insert_n(t, 1000, FLOW_TCP_SYN, 0));
	assert_null(insert_n(t, 1001, FLOW_TCP_SYN, 0));
	assert_int_equal(flow_count(t), 1000);
	for (uint32_t i = 0; i <= 1000; i++) {
		if (i == 10)
			assert_null(lookup_n(t, i));
		else
			assert_non_null(lookup_n(t, i));
	}
	flow_destroy(t);
}

struct expired {
	uint32_t n;
	uint32_t backend[16];
};

static void on_expire(void *arg, const struct flow *f, const struct flow_key *k)
{
	struct expired *e = arg;

	if (e->n < 16)
		e->backend[e->n] = f->backend;
	e->n++;
}

static void test_expire_per_state(void **state)
{
	struct flow_table *t = flow_create(16, 0);
	struct expired ex = { 0 };
	/* Start late in the 16 ms-unit range so the clock wraps the 32-bit last_seen during the test. */
	const uint64_t t0 = (1ull << 36) - 200000;
	static const uint8_t st[] = { FLOW_TCP_SYN, FLOW_TCP_EST, FLOW_TCP_FIN, FLOW_TCP_CLOSED, FLOW_UDP, FLOW_OTHER };

	for (uint32_t i = 0; i < 6; i++)
		assert_non_null(insert_n(t, i, st[i], t0));
	assert_non_null(insert_n(t, 6, FLOW_TCP_EST, t0));      /* kept alive by touches */

	/* Nothing is due yet. */
	assert_int_equal(flow_expire(t, t0 + 29000, &timeouts, 1000, on_expire, &ex), 0);

	/* other 30 s */
	assert_int_equal(flow_expire(t, t0 + 31000, &timeouts, 1000, on_expire, &ex), 1);
	assert_int_equal(ex.backend[0], 5);
	assert_null(lookup_n(t, 5));

	/* syn 60 s */
	flow_touch(t, lookup_n(t, 6), t0 + 61000);
	assert_int_equal(flow_expire(t, t0 + 61000, &timeouts, 1000, on_expire, &ex), 1);
	assert_int_equal(ex.backend[1], 0);

	/* fin 120 s: FIN and CLOSED */
	flow_touch(t, lookup_n(t, 6), t0 + 121000);
	assert_int_equal(flow_expire(t, t0 + 121000, &timeouts, 1000, on_expire, &ex), 2);
	assert_null(lookup_n(t, 2));
	assert_null(lookup_n(t, 3));

	/* udp 300 s, across the wrap of last_seen */
	flow_touch(t, lookup_n(t, 6), t0 + 301000);
	assert_in_range(flow_idle_ms(t, lookup_n(t, 1), t0 + 301000), 301000 - 15, 301000);
	assert_int_equal(flow_expire(t, t0 + 301000, &timeouts, 1000, on_expire, &ex), 1);
	assert_null(lookup_n(t, 4));

	/* est 900 s, but not the touched one */
	flow_touch(t, lookup_n(t, 6), t0 + 901000);
	assert_int_equal(flow_expire(t, t0 + 901000, &timeouts, 1000, NULL, NULL), 1);
	assert_null(lookup_n(t, 1));
	assert_non_null(lookup_n(t, 6));
	assert_int_equal(flow_count(t), 1);
	assert_int_equal(ex.n, 5);

	/* Exactly at the timeout a flow stays; one unit later it goes. */
	assert_int_equal(flow_expire(t, t0 + 901000 + 900000, &timeouts, 1000, NULL, NULL), 0);
	assert_int_equal(flow_expire(t, t0 + 901000 + 900016, &timeouts, 1000, NULL, NULL), 1);
	assert_int_equal(flow_count(t), 0);
	assert_int_equal(flow_expire(t, t0, NULL, 1000, NULL, NULL), 0);
	flow_destroy(t);
}

static void test_expire_incremental(void **state)
{
	struct flow_table *t = flow_create(1000, 0);
	size_t total = 0, calls = 0;

	for (uint32_t i = 0; i < 1000; i++)
		assert_non_null(insert_n(t, i, i % 2 ? FLOW_UDP : FLOW_TCP_EST, 0));
	/* At 400 s the UDP half is due. Scans of 64 slots cover the pool in 16 calls, never more than 64 each. */
	while (calls < 16) {
		size_t n = flow_expire(t, 400000, &timeouts, 64, NULL, NULL);

		assert_true(n <= 64);
		total += n;
		calls++;
	}
	assert_int_equal(total, 500);
	assert_int_equal(flow_count(t), 500);
	/* The cursor wraps: a later sweep finds the rest. */
	assert_int_equal(flow_expire(t, 1000000, &timeouts, SIZE_MAX, NULL, NULL), 500);
	assert_int_equal(flow_count(t), 0);
	flow_destroy(t);
}

static void test_idle_clock(void **state)
{
	struct flow_table *t = flow_create(4, 0);
	struct flow *f = insert_n(t, 1, FLOW_TCP_EST, 100000);

	assert_int_equal(flow_idle_ms(t, f, 100000), 0);
	assert_int_equal(flow_idle_ms(t, f, 100000 + 4800), 4800);
	assert_int_equal(flow_idle_ms(t, f, 50000), 0);          /* a clock behind last_seen counts as 0 */
	/* Resolution is 16 ms, never reporting more idle time than was set. */
	flow_set_idle(t, f, 1000000, 12345);
	assert_true(flow_idle_ms(t, f, 1000000) <= 12345 && flow_idle_ms(t, f, 1000000) > 12345 - 16);
	/* 40 days are measured right; longer saturates at UINT32_MAX ms (49.7 days) but is never taken for
	 * a short time, up to about 397 days. */
	flow_touch(t, f, 7);
	assert_in_range(flow_idle_ms(t, f, 7 + 40ull * 86400000), 40ull * 86400000 - 15, 40ull * 86400000);
	assert_int_equal(flow_idle_ms(t, f, 7 + 365ull * 86400000), UINT32_MAX);
	flow_destroy(t);
}

static void test_next(void **state)
{
	struct flow_table *t = flow_create(5000, 0);
	static uint8_t seen[5000];
	uint32_t cursor = 0, visits = 0;
	struct flow *f;

	for (uint32_t i = 0; i < 5000; i++)
		assert_non_null(insert_n(t, i, FLOW_UDP, 0));
	for (uint32_t i = 0; i < 5000; i += 7)
		flow_delete(t, lookup_n(t, i));
	for (uint32_t i = 0; i < 5000; i += 14)
		assert_non_null(insert_n(t, i, FLOW_UDP, 0));   /* reuse freed slots */

	while ((f = flow_next(t, &cursor))) {
		assert_true(f->backend < 5000);
		seen[f->backend]++;
		visits++;
	}
	assert_int_equal(visits, flow_count(t));
	for (uint32_t i = 0; i < 5000; i++)
		assert_int_equal(seen[i], (i % 7 == 0 && i % 14 != 0) ? 0 : 1);
	assert_null(flow_next(t, &cursor));                     /* stays at the end */

	/* Changing the table mid-iteration is allowed. */
	cursor = 0;
	for (uint32_t n = 0; (f = flow_next(t, &cursor)); n++) {
		if (n % 3 == 0)
			flow_delete(t, f);
		if (n % 5 == 0)
			insert_n(t, 10000 + n, FLOW_TCP_SYN, 0);
	}
	cursor = UINT32_MAX;
	assert_null(flow_next(t, &cursor));
	flow_destroy(t);
}

static void test_tcp_next(void **state)
{
	const uint8_t SYN = FLOW_TH_SYN, ACK = FLOW_TH_ACK, FIN = FLOW_TH_FIN, RST = FLOW_TH_RST, PSH = 0x08;
	int nc = -1;

	/* The normal life: SYN, ACK, data, FIN, last ACK. */
	assert_int_equal(flow_tcp_next(FLOW_TCP_SYN, SYN, &nc), FLOW_TCP_SYN);
	assert_int_equal(nc, 0);
	assert_int_equal(flow_tcp_next(FLOW_TCP_SYN, ACK, &nc), FLOW_TCP_EST);
	assert_int_equal(flow_tcp_next(FLOW_TCP_EST, ACK | PSH, &nc), FLOW_TCP_EST);
	assert_int_equal(flow_tcp_next(FLOW_TCP_EST, FIN | ACK, &nc), FLOW_TCP_FIN);
	assert_int_equal(flow_tcp_next(FLOW_TCP_FIN, ACK, &nc), FLOW_TCP_FIN);
	assert_int_equal(nc, 0);

	/* RST closes from anywhere. */
	assert_int_equal(flow_tcp_next(FLOW_TCP_SYN, RST, &nc), FLOW_TCP_CLOSED);
	assert_int_equal(flow_tcp_next(FLOW_TCP_EST, RST | ACK, &nc), FLOW_TCP_CLOSED);
	assert_int_equal(flow_tcp_next(FLOW_TCP_FIN, RST, &nc), FLOW_TCP_CLOSED);
	assert_int_equal(flow_tcp_next(FLOW_TCP_CLOSED, FIN, &nc), FLOW_TCP_CLOSED);
	assert_int_equal(flow_tcp_next(FLOW_TCP_CLOSED, ACK, &nc), FLOW_TCP_CLOSED);

	/* A bare SYN after FIN or RST is a new connection on a reused port. */
	assert_int_equal(flow_tcp_next(FLOW_TCP_FIN, SYN, &nc), FLOW_TCP_SYN);
	assert_int_equal(nc, 1);
	assert_int_equal(flow_tcp_next(FLOW_TCP_CLOSED, SYN, &nc), FLOW_TCP_SYN);
	assert_int_equal(nc, 1);
	assert_int_equal(flow_tcp_next(FLOW_TCP_CLOSED, SYN, NULL), FLOW_TCP_SYN);

	/* ... but not in SYN or EST, and never with other flags. */
	assert_int_equal(flow_tcp_next(FLOW_TCP_EST, SYN, &nc), FLOW_TCP_EST);
	assert_int_equal(nc, 0);
	assert_int_equal(flow_tcp_next(FLOW_TCP_FIN, SYN | ACK, &nc), FLOW_TCP_FIN);
	assert_int_equal(nc, 0);
	assert_int_equal(flow_tcp_next(FLOW_TCP_EST, SYN | FIN, &nc), FLOW_TCP_EST);
	assert_int_equal(flow_tcp_next(FLOW_TCP_EST, SYN | RST, &nc), FLOW_TCP_EST);
	assert_int_equal(flow_tcp_next(FLOW_TCP_EST, 0, &nc), FLOW_TCP_EST);
	assert_int_equal(flow_tcp_next(FLOW_TCP_SYN, FIN, &nc), FLOW_TCP_FIN);

	/* Non-TCP or garbage states are treated as closed. */
	assert_int_equal(flow_tcp_next(FLOW_UDP, ACK, &nc), FLOW_TCP_CLOSED);
	assert_int_equal(flow_tcp_next((enum flow_state)200, SYN, &nc), FLOW_TCP_SYN);
	assert_int_equal(nc, 1);
	assert_int_equal(flow_tcp_next((enum flow_state)200, 0xff, &nc), FLOW_TCP_CLOSED);

	assert_string_equal(flow_state_name(FLOW_TCP_EST), "EST");
	assert_string_equal(flow_state_name(FLOW_OTHER), "OTHER");
	assert_string_equal(flow_state_name(FLOW_PERSIST), "PERSIST");
	assert_string_equal(flow_state_name(0xff), "?");
	assert_int_equal(flow_timeout_ms(&timeouts, FLOW_TCP_CLOSED), timeouts.tcp_fin_ms);
	assert_int_equal(flow_timeout_ms(&timeouts, 0xff), timeouts.other_ms);
}

/* IPv6 keys: only in a table made for them, next to IPv4 keys; every byte of an address counts. */
static struct flow_key key6_n(uint32_t i)
{
	struct flow_key k;

	memset(&k, 0, sizeof(k));
	ipaddr_parse("2001:db8:1::7", &k.saddr);
	ipaddr_parse("2001:db8::100", &k.daddr);
	k.saddr.w[2] = htonl(i >> 16);
	k.sport = htons((uint16_t)i);
	k.dport = htons(443);
	k.proto = 6;
	return k;
}

static void test_ipv6_keys(void **state)
{
	struct flow_table *narrow = flow_create(64, 0), *wide = flow_create(4096, 1);
	struct flow_key k6 = key6_n(1), k4 = key_n(1), o;
	struct flow *f6, *f4;

	assert_false(flow_ipv6(narrow));
	assert_true(flow_ipv6(wide));
	/* An IPv4-only table holds no IPv6 key. */
	errno = 0;
	assert_null(flow_insert(narrow, &k6, 1, FLOW_UDP, 1000));
	assert_int_equal(errno, EAFNOSUPPORT);
	assert_null(flow_lookup(narrow, &k6));
	assert_int_equal(flow_count(narrow), 0);

	f6 = flow_insert(wide, &k6, 6, FLOW_UDP, 1000);
	f4 = flow_insert(wide, &k4, 4, FLOW_UDP, 1000);
	assert_non_null(f6);
	assert_non_null(f4);
	assert_ptr_not_equal(f6, f4);
	assert_ptr_equal(flow_lookup(wide, &k6), f6);
	assert_ptr_equal(flow_lookup(wide, &k4), f4);
	flow_key_of(wide, f6, &o);
	assert_memory_equal(o.saddr.b, k6.saddr.b, 16);
	assert_memory_equal(o.daddr.b, k6.daddr.b, 16);
	assert_int_equal(o.sport, k6.sport);
	flow_key_of(wide, f4, &o);
	assert_true(ipaddr_is_v4(&o.saddr) && ipaddr_eq(&o.saddr, &k4.saddr) && ipaddr_eq(&o.daddr, &k4.daddr));
	for (int b = 0; b < 16; b++) {
		o = k6;
		o.saddr.b[b] ^= 0x80;
		assert_null(flow_lookup(wide, &o));
		assert_int_not_equal(flow_hash(&o), flow_hash(&k6));
		o = k6;
		o.daddr.b[b] ^= 1;
		assert_null(flow_lookup(wide, &o));
		assert_int_not_equal(flow_hash_addrs(&o.saddr, &o.daddr, 6), flow_hash_addrs(&k6.saddr, &k6.daddr, 6));
	}
	/* Filled to the last entry with IPv6 flows, each found again by its key; the 56-byte entries. */
	for (uint32_t i = 2; i < 4096; i++) {
		o = key6_n(i);
		assert_non_null(flow_insert(wide, &o, (uint16_t)i, FLOW_UDP, 1000));
	}
	errno = 0;
	o = key6_n(5000);
	assert_null(flow_insert(wide, &o, 1, FLOW_UDP, 1000));
	assert_int_equal(errno, ENOSPC);
	for (uint32_t i = 2; i < 4096; i++) {
		o = key6_n(i);
		f6 = flow_lookup(wide, &o);
		assert_non_null(f6);
		assert_int_equal(f6->backend, (uint16_t)i);
	}
	assert_true(flow_bytes_per_flow(wide) <= 61);
	assert_true(flow_bytes_per_flow(narrow) <= 37 + 1);
	flow_destroy(narrow);
	flow_destroy(wide);
}

static void test_hash(void **state)
{
	struct flow_key k = {
		.saddr = ipaddr_from_v4(htonl(0xc0a80001u)), .daddr = ipaddr_from_v4(htonl(0xc6336401u)),
		.sport = htons(40000), .dport = htons(80),
		.proto = 6,
	}, o;
	static uint32_t bucket[1024];
	const uint32_t n = 1u << 20;
	uint32_t max = 0;

	/* Pinned: both nodes of a pair may run different builds during an upgrade; change only on purpose. */
	assert_int_equal(flow_hash(&k), 0xbe0c59e1u);
	assert_int_equal(flow_hash_addrs(&k.saddr, &k.daddr, 17), 0x7e3540c8u);

	/* Every field matters; padding does not; the address hash ignores ports. */
	o = k; o.saddr.w[3] ^= htonl(1);
	assert_int_not_equal(flow_hash(&o), flow_hash(&k));
	o = k; o.daddr.w[3] ^= htonl(1);
	assert_int_not_equal(flow_hash(&o), flow_hash(&k));
	o = k; o.sport ^= htons(1);
	assert_int_not_equal(flow_hash(&o), flow_hash(&k));
	o = k; o.dport ^= htons(1);
	assert_int_not_equal(flow_hash(&o), flow_hash(&k));
	o = k; o.proto = 17;
	assert_int_not_equal(flow_hash(&o), flow_hash(&k));
	o = k; o.sport = k.dport; o.dport = k.sport;
	assert_int_not_equal(flow_hash(&o), flow_hash(&k));
	memset(&o, 0xff, sizeof(o));
	o.saddr = k.saddr; o.daddr = k.daddr; o.sport = k.sport; o.dport = k.dport; o.proto = k.proto;
	assert_int_equal(flow_hash(&o), flow_hash(&k));
	assert_int_not_equal(flow_hash_addrs(&k.saddr, &k.daddr, 6), flow_hash_addrs(&k.saddr, &k.daddr, 17));

	/* Structured keys (few clients, sequential ports) spread evenly over the low bits the table uses:
	 * 1M keys in 1024 buckets, mean 1024, sd 32; allow 6 sd. */
	for (uint32_t i = 0; i < n; i++) {
		struct flow_key x = key_n(i);

		bucket[flow_hash(&x) & 1023]++;
	}
	for (uint32_t i = 0; i < 1024; i++) {
		if (bucket[i] > max)
			max = bucket[i];
		assert_true(bucket[i] > 1024 - 192);
	}
	assert_true(max < 1024 + 192);
}

/* One million flows: the memory budget, and filling it to the brim. */
static void test_million(void **state)
{
	const uint32_t n = 1000000;
	struct timespec a, b;
	struct flow_table *t;
	uint32_t found = 0;
	double secs;

	clock_gettime(CLOCK_MONOTONIC, &a);
	t = flow_create(n, 0);
	assert_non_null(t);
	print_message("flow_max %u: %zu bytes total, %.2f bytes per flow (flow_bytes_per_flow %zu)\n", n,
		flow_mem_bytes(t), (double)flow_mem_bytes(t) / n, flow_bytes_per_flow(t));
	assert_true(flow_bytes_per_flow(t) <= 40);
	assert_true(flow_mem_bytes(t) < 48u << 20);

	for (uint32_t i = 0; i < n; i++)
		if (!insert_n(t, i, FLOW_TCP_EST, i / 1000))
			fail_msg("insert %u failed", i);
	assert_int_equal(flow_count(t), n);
	assert_null(insert_n(t, n, FLOW_TCP_SYN, 0));
	for (uint32_t i = 0; i < n; i += 97)
		found += lookup_n(t, i) != NULL;
	assert_int_equal(found, (n + 96) / 97);
	assert_int_equal(flow_expire(t, 900000, &timeouts, SIZE_MAX, NULL, NULL), 0);
	assert_int_equal(flow_expire(t, 10000000, &timeouts, SIZE_MAX, NULL, NULL), n);
	assert_int_equal(flow_count(t), 0);
	flow_destroy(t);

	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	print_message("create + fill + lookups + 2 sweeps: %.3f s\n", secs);
#if !defined(__SANITIZE_ADDRESS__)
	assert_true(secs < 2.0);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_bad),
		cmocka_unit_test(test_insert_lookup_delete),
		cmocka_unit_test(test_one_chain),
		cmocka_unit_test(test_chains_are_keyed),
		cmocka_unit_test(test_full_table),
		cmocka_unit_test(test_expire_per_state),
		cmocka_unit_test(test_expire_incremental),
		cmocka_unit_test(test_idle_clock),
		cmocka_unit_test(test_next),
		cmocka_unit_test(test_tcp_next),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_ipv6_keys),
		cmocka_unit_test(test_million),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
