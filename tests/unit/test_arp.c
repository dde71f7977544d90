/* Unit tests for lbd/arp.c's backend MAC learning without a network: the rule that a known MAC holds
 * while it is heard (arp_mac_judge), a flood of replies alternating a backend's MAC (no Maglev rebuild,
 * the known MAC kept, every refusal counted), a replaced backend learned once its old MAC is silent,
 * and a MAC unconfirmed for four rounds making the backend unusable. Time is passed in. */
#include <arpa/inet.h>
#include <ev.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "lbd/lbd.h"

static const uint8_t MAC_A[6] = { 0x02, 0, 0, 0, 0, 0xaa };
static const uint8_t MAC_B[6] = { 0x02, 0, 0, 0, 0, 0xbb };
static const uint8_t MAC_EVIL[6] = { 0x02, 0, 0, 0, 0, 0xee };

#define BE(i) ((struct ipaddr){ .w = { 0, 0, htonl(0xffff), htonl(0xc0000215u + (uint32_t)(i)) } })  /* 192.0.2.21 + i */

static struct lbd lb;

/* Two services over the same three backends (so each address has two slots), as lbd builds them. */
static struct cfg *mkcfg(void)
{
	struct cfg *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->n_services = 2;
	c->arp_refresh_ms = 5000;
	for (size_t k = 0; k < 2; k++) {
		struct cfg_service *cs = &c->services[k];
		snprintf(cs->name, sizeof(cs->name), "svc%zu", k);
		cs->vip = ipaddr_from_v4(htonl(0xc0000264));
		cs->port = (uint16_t)(80 + k);
		cs->proto = 17;
		cs->check = CFG_CHECK_NONE;
		for (size_t i = 0; i < 3; i++) {
			cs->backends[i].addr = BE(i);
			cs->backends[i].weight = 1;
		}
		cs->n_backends = 3;
	}
	return c;
}

static int lb_setup(void **state)
{
	memset(&lb, 0, sizeof(lb));
	assert_int_equal(pthread_rwlock_init(&lb.dp_lock, NULL), 0);
	lb.ctl_tx_fd = -1;
	assert_int_equal(dp_apply_config(&lb, mkcfg()), 0);
	return 0;
}

static int lb_teardown(void **state)
{
	for (size_t i = 0; i < lb.n_services; i++)
		maglev_destroy(lb.services[i].mg);
	cfg_free(lb.cfg);
	pthread_rwlock_destroy(&lb.dp_lock);
	if (lb.loop)
		ev_loop_destroy(lb.loop);
	memset(&lb, 0, sizeof(lb));
	return 0;
}

static struct lbd_backend *slot_of(size_t service, struct ipaddr addr)
{
	struct lbd_backend *b = dp_find_backend(&lb, &lb.services[service], &addr);
	assert_non_null(b);
	return b;
}

/* Every backend resolved at t0: one rebuild per service per backend, all usable. */
static void resolve_all(uint64_t t0)
{
	for (size_t i = 0; i < 3; i++) {
		uint8_t mac[6];
		memcpy(mac, MAC_A, 6);
		mac[4] = (uint8_t)i;
		arp_learn(&lb, &BE(i), mac, t0);
	}
	for (size_t k = 0; k < 2; k++)
		assert_int_equal(lb.services[k].n_usable, 3);
}

static void test_judge(void **state)
{
	struct lbd_backend b = { .addr = BE(0) };

	assert_int_equal(arp_mac_judge(&b, MAC_A, 1000), ARP_MAC_FIRST);
	memcpy(b.mac, MAC_A, 6);
	b.mac_known = 1;
	b.mac_seen_ms = 10000;
	assert_int_equal(arp_mac_judge(&b, MAC_A, 10000), ARP_MAC_SAME);
	assert_int_equal(arp_mac_judge(&b, MAC_A, 99999), ARP_MAC_SAME);
	/* A different MAC while the known one was heard within the lock time: refused, up to its end. */
	assert_int_equal(arp_mac_judge(&b, MAC_B, 10000), ARP_MAC_REFUSE);
	assert_int_equal(arp_mac_judge(&b, MAC_B, 10000 + ARP_MAC_LOCK_MS - 1), ARP_MAC_REFUSE);
	assert_int_equal(arp_mac_judge(&b, MAC_B, 10000 + ARP_MAC_LOCK_MS), ARP_MAC_CHANGE);
	/* A MAC that differs in its last byte only, or its first only, is a different MAC. */
	uint8_t m[6];
	memcpy(m, MAC_A, 6);
	m[0] ^= 0x80;
	assert_int_equal(arp_mac_judge(&b, m, 10500), ARP_MAC_REFUSE);
	/* Once forgotten (four silent rounds), any MAC is the first again. */
	b.mac_known = 0;
	assert_int_equal(arp_mac_judge(&b, MAC_B, 10001), ARP_MAC_FIRST);
}

static void test_first_mac_rebuilds(void **state)
{
	uint64_t r0 = lb.ctr.maglev_rebuilds;

	assert_int_equal(lb.services[0].n_usable, 0);
	arp_learn(&lb, &BE(0), MAC_A, 1000);
	/* The address has a slot in each service: both learn it and both tables are rebuilt. */
	for (size_t k = 0; k < 2; k++) {
		struct lbd_backend *b = slot_of(k, BE(0));
		assert_true(b->mac_known);
		assert_memory_equal(b->mac, MAC_A, 6);
		assert_int_equal(b->mac_seen_ms, 1000);
		assert_int_equal(lb.services[k].n_usable, 1);
	}
	assert_int_equal(lb.ctr.maglev_rebuilds, r0 + 2);
	/* The same MAC again confirms without a rebuild. */
	arp_learn(&lb, &BE(0), MAC_A, 3000);
	assert_int_equal(lb.ctr.maglev_rebuilds, r0 + 2);
	assert_int_equal(slot_of(1, BE(0))->mac_seen_ms, 3000);
	/* A frame from an address that is no backend changes nothing. */
	arp_learn(&lb, &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), htonl(0xc0000299) } }, MAC_EVIL, 3000);
	assert_int_equal(lb.ctr.maglev_rebuilds, r0 + 2);
	assert_int_equal(lb.ctr.arp_mac_refused, 0);
}

/* The attack of issue 12: 5 000 replies/s for 10 s alternating a backend's MAC with another. */
static void test_flapping_changes_nothing(void **state)
{
	uint16_t table[2][64];
	const uint64_t t0 = 100000;

	resolve_all(t0);
	struct lbd_backend *b = slot_of(0, BE(1));
	uint8_t real[6];
	memcpy(real, b->mac, 6);
	uint64_t r0 = lb.ctr.maglev_rebuilds;
	for (size_t k = 0; k < 2; k++)
		for (uint32_t h = 0; h < 64; h++)
			table[k][h] = lb.services[k].mg_slots[maglev_lookup(lb.services[k].mg, h * 2654435761u)];

	for (uint64_t n = 0; n < 50000; n++) {
		uint64_t now = t0 + 1 + n / 5;     /* 5 frames per ms */
		arp_learn(&lb, &BE(1), n % 2 ? MAC_EVIL : real, now);
	}
	assert_int_equal(lb.ctr.maglev_rebuilds, r0);
	assert_int_equal(lb.ctr.arp_mac_changes, 0);
	/* Every forged frame refused and counted once, although the address has a slot in two services. */
	assert_int_equal(lb.ctr.arp_mac_refused, 25000);
	for (size_t k = 0; k < 2; k++) {
		assert_memory_equal(slot_of(k, BE(1))->mac, real, 6);
		assert_int_equal(lb.services[k].n_usable, 3);
		for (uint32_t h = 0; h < 64; h++)
			assert_int_equal(lb.services[k].mg_slots[maglev_lookup(lb.services[k].mg, h * 2654435761u)],
					 table[k][h]);
	}
	/* One log line per ARP_REFUSED_LOG_MS at most: 10 s of flood fit in one or two windows. */
	assert_true(lb.arp_refused_log_ms >= t0 && lb.arp_refused_log_ms <= t0 + 1 + 10000);
}

/* A forger alone (the real backend answering only our rounds) still cannot move a MAC that was heard
 * within the lock time; the real backend answering every round keeps it. */
static void test_forger_between_rounds(void **state)
{
	const uint64_t t0 = 200000;

	resolve_all(t0);
	uint8_t real[6];
	memcpy(real, slot_of(0, BE(2))->mac, 6);
	for (uint64_t t = t0; t < t0 + 3000; t += 500) {
		arp_learn(&lb, &BE(2), real, t);               /* answers to our requests every 500 ms */
		arp_learn(&lb, &BE(2), MAC_EVIL, t + 499);
	}
	assert_memory_equal(slot_of(0, BE(2))->mac, real, 6);
	assert_int_equal(lb.ctr.arp_mac_changes, 0);
	assert_int_equal(lb.ctr.arp_mac_refused, 6);
}

/* Replaced hardware: the old MAC goes silent, the new one answers; learned without a rebuild once the
 * old one has been silent ARP_MAC_LOCK_MS; then the new one holds in turn. */
static void test_replaced_backend_learned(void **state)
{
	const uint64_t t0 = 300000;

	arp_learn(&lb, &BE(0), MAC_A, t0);
	uint64_t r0 = lb.ctr.maglev_rebuilds;
	arp_learn(&lb, &BE(0), MAC_B, t0 + 400);
	assert_memory_equal(slot_of(0, BE(0))->mac, MAC_A, 6);
	assert_int_equal(lb.ctr.arp_mac_refused, 1);
	arp_learn(&lb, &BE(0), MAC_B, t0 + ARP_MAC_LOCK_MS);
	for (size_t k = 0; k < 2; k++) {
		struct lbd_backend *b = slot_of(k, BE(0));
		assert_memory_equal(b->mac, MAC_B, 6);
		assert_true(b->mac_known);
		assert_int_equal(b->mac_seen_ms, t0 + ARP_MAC_LOCK_MS);
		assert_int_equal(lb.services[k].n_usable, 1);
	}
	assert_int_equal(lb.ctr.arp_mac_changes, 1);
	assert_int_equal(lb.ctr.maglev_rebuilds, r0);
	/* At most one change per lock time: the old MAC coming back at once is refused. */
	arp_learn(&lb, &BE(0), MAC_A, t0 + ARP_MAC_LOCK_MS + 10);
	assert_memory_equal(slot_of(0, BE(0))->mac, MAC_B, 6);
	assert_int_equal(lb.ctr.arp_mac_refused, 2);
}

/* A MAC not confirmed for four arp_refresh rounds makes the backend unusable (a rebuild), and the next
 * MAC heard for it, whichever it is, makes it usable again. arp_refresh_cb reads the real clock. */
static void test_unconfirmed_mac_dropped(void **state)
{
	ev_timer t;
	uint64_t now = clock_ms();

	lb.loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(lb.loop);
	resolve_all(now);
	slot_of(0, BE(0))->mac_seen_ms = now - 4 * 5000 - 1;
	slot_of(1, BE(0))->mac_seen_ms = now - 4 * 5000 - 1;
	uint64_t r0 = lb.ctr.maglev_rebuilds;
	ev_timer_init(&t, arp_refresh_cb, 1.0, 0.0);
	t.data = &lb;
	arp_refresh_cb(lb.loop, &t, 0);
	ev_timer_stop(lb.loop, &t);
	for (size_t k = 0; k < 2; k++) {
		assert_false(slot_of(k, BE(0))->mac_known);
		assert_int_equal(lb.services[k].n_usable, 2);
	}
	assert_int_equal(lb.ctr.maglev_rebuilds, r0 + 2);
	assert_true(slot_of(0, BE(1))->mac_known);
	arp_learn(&lb, &BE(0), MAC_B, now + 1);
	for (size_t k = 0; k < 2; k++) {
		assert_memory_equal(slot_of(k, BE(0))->mac, MAC_B, 6);
		assert_int_equal(lb.services[k].n_usable, 3);
	}
	assert_int_equal(lb.ctr.arp_mac_changes, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_judge),
		cmocka_unit_test_setup_teardown(test_first_mac_rebuilds, lb_setup, lb_teardown),
		cmocka_unit_test_setup_teardown(test_flapping_changes_nothing, lb_setup, lb_teardown),
		cmocka_unit_test_setup_teardown(test_forger_between_rounds, lb_setup, lb_teardown),
		cmocka_unit_test_setup_teardown(test_replaced_backend_learned, lb_setup, lb_teardown),
		cmocka_unit_test_setup_teardown(test_unconfirmed_mac_dropped, lb_setup, lb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
