/* Unit tests for the vrrpd election state machine (vrrpd/fsm.c), driven by a fake clock: every transition
 * on its own, then two machines talking over a fake wire, where the pair must always settle on one
 * master and a graceful stop must never leave it without one. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vrrpd/fsm.h"

#define T0 1000u                        /* fake clock start: not zero, so "0" bugs show */
#define ADDR(x) ipaddr_from_v4(htonl(0x0a000000u | (x))) /* 10.0.0.x, IPv4-mapped */

enum {
	ADV = VRRP_ACT_SEND_ADVERT,
	MAS = VRRP_ACT_BECOME_MASTER,
	BAK = VRRP_ACT_BECOME_BACKUP,
	GARP = VRRP_ACT_SEND_GARP,
	DONE = VRRP_ACT_STOP_DONE,
	FLT = VRRP_ACT_ENTER_FAULT,
};

static struct vrrp_fsm_config mkcfg(uint8_t prio, uint32_t host, uint32_t adv_ms, bool preempt)
{
	struct vrrp_fsm_config c = {
		.priority = prio, .addr = ADDR(host), .advert_ms = adv_ms, .preempt = preempt,
		.preempt_delay_ms = 0, .stop_timeout_ms = 5000,
	};
	return c;
}

static struct vrrp_advert mkadv(uint8_t prio, uint32_t host, uint32_t adv_ms, bool master)
{
	struct vrrp_advert a = { .priority = prio, .addr = ADDR(host), .advert_ms = adv_ms, .master = master };
	return a;
}

/* What must hold after every call, whatever the history. */
static void check_invariants(const struct vrrp_fsm *f, uint64_t now)
{
	uint64_t d = vrrp_fsm_deadline(f);
	enum vrrp_state s = vrrp_fsm_state(f);

	if (f->stopped || s == VRRP_INIT) {
		assert_true(d == VRRP_NEVER);
		assert_false(vrrp_fsm_stopping(f));
	} else {
		assert_true(d != VRRP_NEVER);
		assert_true(d >= now);
	}
	if (vrrp_fsm_stopping(f))
		assert_int_equal(s, VRRP_MASTER);
	if (f->stopped || vrrp_fsm_stopping(f) || s == VRRP_INIT || s == VRRP_FAULT)
		assert_int_equal(vrrp_fsm_advert_priority(f), 0);
	else
		assert_int_equal(vrrp_fsm_advert_priority(f), f->cfg.priority);
}

/* Calls the timer at now; before the deadline it must be a no-op that touches nothing, and after a due
 * call the next deadline must lie in the future. */
static unsigned timer_at(struct vrrp_fsm *f, uint64_t now)
{
	struct vrrp_fsm before;
	unsigned act;

	memcpy(&before, f, sizeof(before));
	act = vrrp_fsm_timer(f, now);
	if (now < vrrp_fsm_deadline(&before)) {
		assert_int_equal(act, 0);
		assert_memory_equal(&before, f, sizeof(before));
	} else {
		assert_true(vrrp_fsm_deadline(f) > now);
	}
	check_invariants(f, now);
	return act;
}

/* Fires the next timer, checking that one ms earlier nothing happens; *at gets the time it fired. */
static unsigned fire(struct vrrp_fsm *f, uint64_t *at)
{
	uint64_t d = vrrp_fsm_deadline(f);

	assert_true(d != VRRP_NEVER);
	if (d > 0)
		assert_int_equal(timer_at(f, d - 1), 0);
	*at = d;
	return timer_at(f, d);
}

static unsigned advert_at(struct vrrp_fsm *f, struct vrrp_advert a, uint64_t now)
{
	unsigned act = vrrp_fsm_advert(f, &a, now);
	check_invariants(f, now);
	return act;
}

static void start_backup(struct vrrp_fsm *f, const struct vrrp_fsm_config *c, uint64_t now)
{
	assert_int_equal(vrrp_fsm_init(f, c), 0);
	assert_int_equal(vrrp_fsm_startup(f, now), BAK);
	check_invariants(f, now);
}

/* Starts f and lets the master-down timer make it MASTER; returns the time it did. */
static uint64_t start_master(struct vrrp_fsm *f, const struct vrrp_fsm_config *c, uint64_t now)
{
	uint64_t t;

	start_backup(f, c, now);
	assert_int_equal(fire(f, &t), ADV | MAS);
	assert_int_equal(vrrp_fsm_state(f), VRRP_MASTER);
	return t;
}

/* ---- config, names, helpers ---- */

static void test_config_check(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 1, 100, true);
	struct vrrp_fsm f;
	const char *why = "x";

	assert_int_equal(vrrp_fsm_config_check(&c, &why), 0);
	assert_null(why);
	const struct { uint8_t prio; uint32_t adv; struct ipaddr addr; } bad[] = {
		{ 0, 100, ADDR(1) }, { 255, 100, ADDR(1) }, { 100, 4, ADDR(1) }, { 100, 40001, ADDR(1) },
		{ 100, 0, ADDR(1) }, { 100, UINT32_MAX, ADDR(1) }, { 100, 100, { .w = { 0 } } },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = mkcfg(100, 1, 100, true);
		c.priority = bad[i].prio;
		c.advert_ms = bad[i].adv;
		c.addr = bad[i].addr;
		assert_int_equal(vrrp_fsm_config_check(&c, &why), -1);
		assert_non_null(why);
		assert_int_equal(vrrp_fsm_config_check(&c, NULL), -1);
		errno = 0;
		assert_int_equal(vrrp_fsm_init(&f, &c), -1);
		assert_int_equal(errno, EINVAL);
	}
	/* The limits themselves are fine. */
	c = mkcfg(1, 1, 10, false);
	assert_int_equal(vrrp_fsm_config_check(&c, NULL), 0);
	c = mkcfg(254, 1, 40000, false);
	assert_int_equal(vrrp_fsm_config_check(&c, NULL), 0);
}

static void test_names(void **state)
{
	char buf[128];

	assert_string_equal(vrrp_state_name(VRRP_INIT), "INIT");
	assert_string_equal(vrrp_state_name(VRRP_BACKUP), "BACKUP");
	assert_string_equal(vrrp_state_name(VRRP_MASTER), "MASTER");
	assert_string_equal(vrrp_state_name(VRRP_FAULT), "FAULT");
	assert_string_equal(vrrp_state_name((enum vrrp_state)42), "?");
	assert_string_equal(vrrp_actions_str(0, buf, sizeof(buf)), "none");
	assert_string_equal(vrrp_actions_str(ADV | MAS, buf, sizeof(buf)), "SEND_ADVERT|BECOME_MASTER");
	assert_string_equal(vrrp_actions_str(BAK | DONE | FLT | GARP, buf, sizeof(buf)),
			    "BECOME_BACKUP|SEND_GARP|STOP_DONE|ENTER_FAULT");
	/* A short buffer gets the names that fit whole. */
	assert_string_equal(vrrp_actions_str(ADV | MAS, buf, 8), "");
	assert_string_equal(vrrp_actions_str(ADV | MAS, buf, 14), "SEND_ADVERT");
	assert_string_equal(vrrp_actions_str(0, buf, 3), "");
	buf[0] = 'x';
	vrrp_actions_str(ADV, buf, 0);
	assert_int_equal(buf[0], 'x');
}

/* ---- INIT and BACKUP ---- */

static void test_startup_to_backup(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 1, 100, true);
	struct vrrp_fsm f;
	struct vrrp_advert a;

	assert_int_equal(vrrp_fsm_init(&f, &c), 0);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_INIT);
	assert_true(vrrp_fsm_deadline(&f) == VRRP_NEVER);
	assert_int_equal(vrrp_fsm_advert_priority(&f), 0);
	assert_int_equal(timer_at(&f, T0), 0);
	assert_int_equal(advert_at(&f, mkadv(200, 2, 100, true), T0), 0);      /* INIT ignores adverts */
	assert_int_equal(f.cnt.rx_ignored, 1);
	assert_int_equal(vrrp_fsm_fault(&f, false, T0), 0);

	assert_int_equal(vrrp_fsm_startup(&f, T0), BAK);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_BACKUP);
	assert_int_equal(vrrp_fsm_advert_priority(&f), 100);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 300 + 60);
	assert_int_equal(vrrp_fsm_startup(&f, T0 + 5), 0);                     /* only once */
	assert_true(vrrp_fsm_deadline(&f) == T0 + 360);

	vrrp_fsm_advert_fill(&f, &a);
	assert_int_equal(a.priority, 100);
	assert_true(ipaddr_eq(&a.addr, &c.addr));
	assert_int_equal(a.advert_ms, 100);
	assert_false(a.master);
}

/* Skew and master-down arithmetic, worked by hand, and takeover exactly at 3 x adv + skew. */
static void test_skew_math(void **state)
{
	static const struct { uint8_t prio; uint32_t adv, skew; } tab[] = {
		{ 1, 20, 19 },   { 1, 100, 99 },   { 1, 1000, 996 },     /* 255 * a / 256 */
		{ 100, 20, 12 }, { 100, 100, 60 }, { 100, 1000, 609 },   /* 156 * a / 256 */
		{ 150, 20, 8 },  { 150, 100, 41 }, { 150, 1000, 414 },   /* 106 * a / 256 */
		{ 254, 20, 0 },  { 254, 100, 0 },  { 254, 1000, 7 },     /*   2 * a / 256 */
	};

	assert_int_equal(vrrp_skew_ms(1, 40000), 39843);
	assert_int_equal(vrrp_master_down_ms(1, 40000), 159843);
	assert_int_equal(vrrp_skew_ms(254, 10), 0);
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		struct vrrp_fsm_config c = mkcfg(tab[i].prio, 1, tab[i].adv, true);
		struct vrrp_fsm f;
		uint64_t t;

		assert_int_equal(vrrp_skew_ms(tab[i].prio, tab[i].adv), tab[i].skew);
		assert_int_equal(vrrp_master_down_ms(tab[i].prio, tab[i].adv), 3 * tab[i].adv + tab[i].skew);
		start_backup(&f, &c, T0);
		assert_int_equal(vrrp_fsm_skew_ms(&f), tab[i].skew);
		assert_int_equal(vrrp_fsm_master_down_ms(&f), 3 * tab[i].adv + tab[i].skew);
		assert_int_equal(fire(&f, &t), ADV | MAS);
		assert_true(t == T0 + 3 * tab[i].adv + tab[i].skew);
		assert_int_equal(vrrp_fsm_state(&f), VRRP_MASTER);
		assert_true(vrrp_fsm_deadline(&f) == t + tab[i].adv);
		assert_int_equal(f.cnt.became_master, 1);
	}
}

/* A backup (priority 100, 10.0.0.5) hearing a master of each rank, with preempt on and off. */
static void test_backup_hears_ranks(void **state)
{
	static const struct { uint8_t prio; uint32_t host; bool preempt; bool resets; } tab[] = {
		{ 150, 1, false, true }, { 150, 9, true, true },        /* higher: always defer */
		{ 100, 9, false, true }, { 100, 9, true, true },        /* equal, higher address: defer */
		{ 100, 1, false, true }, { 100, 1, true, false },       /* equal, lower address: preempt if on */
		{ 50, 9, false, true },  { 50, 9, true, false },        /* lower: preempt if on */
		{ 1, 9, true, false },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		struct vrrp_fsm_config c = mkcfg(100, 5, 100, tab[i].preempt);
		struct vrrp_fsm f;
		uint64_t t, t_rx = T0 + 200;

		start_backup(&f, &c, T0);
		assert_int_equal(advert_at(&f, mkadv(tab[i].prio, tab[i].host, 100, true), t_rx), 0);
		assert_int_equal(vrrp_fsm_state(&f), VRRP_BACKUP);
		if (tab[i].resets)
			assert_true(vrrp_fsm_deadline(&f) == t_rx + 360);
		else
			assert_true(vrrp_fsm_deadline(&f) == T0 + 360);
		assert_int_equal(fire(&f, &t), ADV | MAS);
		assert_true(t == (tab[i].resets ? t_rx : T0) + 360);
	}
}

/* The master's interval replaces ours in Master_Down_Interval; skew keeps our priority. */
static void test_backup_learns_master_interval(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, false);
	struct vrrp_fsm f;

	start_backup(&f, &c, T0);
	assert_int_equal(advert_at(&f, mkadv(200, 9, 1000, true), T0 + 10), 0);
	assert_int_equal(vrrp_fsm_master_down_ms(&f), 3000 + 609);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 10 + 3609);
	assert_int_equal(advert_at(&f, mkadv(200, 9, 20, true), T0 + 20), 0);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 20 + 60 + 12);
}

/* The master steps down (priority 0): we take over after Skew_Time, not Master_Down_Interval. */
static void test_backup_prio0_takeover(void **state)
{
	static const struct { uint8_t prio; uint32_t adv, skew; } tab[] = {
		{ 100, 100, 60 }, { 1, 1000, 996 }, { 254, 100, 0 }, { 150, 20, 8 },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		struct vrrp_fsm_config c = mkcfg(tab[i].prio, 5, tab[i].adv, false);
		struct vrrp_fsm f;
		uint64_t t;

		start_backup(&f, &c, T0);
		assert_int_equal(advert_at(&f, mkadv(255, 9, tab[i].adv, true), T0 + 10), 0);
		assert_int_equal(advert_at(&f, mkadv(0, 9, tab[i].adv, true), T0 + 20), 0);
		assert_true(vrrp_fsm_deadline(&f) == T0 + 20 + tab[i].skew);
		if (tab[i].skew == 0) {
			/* Due at once: the glue runs the timer in the same loop iteration. */
			assert_int_equal(timer_at(&f, T0 + 20), ADV | MAS);
			continue;
		}
		assert_int_equal(fire(&f, &t), ADV | MAS);
		assert_true(t == T0 + 20 + tab[i].skew);
	}
}

/* ---- MASTER ---- */

static void test_master_advert_timer(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, false);
	struct vrrp_fsm f;
	struct vrrp_advert a;
	uint64_t t, t_m = start_master(&f, &c, T0);

	vrrp_fsm_advert_fill(&f, &a);
	assert_int_equal(a.priority, 100);
	assert_true(a.master);
	for (int i = 1; i <= 50; i++) {
		assert_int_equal(fire(&f, &t), ADV);
		assert_true(t == t_m + 100u * (unsigned)i);
	}
	/* A timer that fires a little late keeps the interval's grid: no drift. */
	assert_int_equal(timer_at(&f, t + 100 + 7), ADV);
	assert_true(vrrp_fsm_deadline(&f) == t + 200);
	t += 200;
	/* A late glue advertises once, not a burst, and counts the next interval from now. */
	assert_int_equal(timer_at(&f, t + 350), ADV);
	assert_true(vrrp_fsm_deadline(&f) == t + 450);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_MASTER);
}

static void test_master_hears_higher(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, true);
	struct vrrp_fsm f;
	uint64_t t, t_m = start_master(&f, &c, T0);

	assert_int_equal(advert_at(&f, mkadv(101, 1, 1000, true), t_m + 7), BAK);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_BACKUP);
	assert_int_equal(f.cnt.became_backup, 1);
	assert_true(vrrp_fsm_deadline(&f) == t_m + 7 + 3609);  /* the new master's interval */
	/* It really is a backup now: silence makes it master again. */
	assert_int_equal(fire(&f, &t), ADV | MAS);
	assert_true(t == t_m + 7 + 3609);
}

static void test_master_hears_lower(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, true);
	struct vrrp_fsm f;
	uint64_t t_m = start_master(&f, &c, T0);

	/* Split brain ending in our favour: re-announce now, and the advert timer starts again. */
	assert_int_equal(advert_at(&f, mkadv(99, 9, 100, true), t_m + 30), ADV | GARP);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_MASTER);
	assert_true(vrrp_fsm_deadline(&f) == t_m + 130);
	/* A lower peer that does not claim MASTER is no split brain. */
	assert_int_equal(advert_at(&f, mkadv(99, 9, 100, false), t_m + 40), 0);
	assert_true(vrrp_fsm_deadline(&f) == t_m + 130);
}

static void test_master_equal_priority_tie(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, false);
	struct vrrp_fsm f;
	uint64_t t_m;

	/* The peer's address is higher: we yield. 10.0.0.6 > 10.0.0.5 only when compared in host order,
	 * and 10.0.1.0 vs 10.0.0.255 catches a byte-order mistake. */
	t_m = start_master(&f, &c, T0);
	assert_int_equal(advert_at(&f, mkadv(100, 6, 100, true), t_m + 1), BAK);
	c = mkcfg(100, 0xff, 100, false);
	t_m = start_master(&f, &c, T0);
	assert_int_equal(advert_at(&f, mkadv(100, 0x100, 100, true), t_m + 1), BAK);
	/* Ours is higher: we stay and re-announce. */
	c = mkcfg(100, 5, 100, false);
	t_m = start_master(&f, &c, T0);
	assert_int_equal(advert_at(&f, mkadv(100, 4, 100, true), t_m + 1), ADV | GARP);
	c = mkcfg(100, 0x100, 100, false);
	t_m = start_master(&f, &c, T0);
	assert_int_equal(advert_at(&f, mkadv(100, 0xff, 100, true), t_m + 1), ADV | GARP);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_MASTER);
}

/* An IPv6 address (documentation prefix) for the tie-break tests. */
static struct ipaddr addr6(const char *s)
{
	struct ipaddr a;

	assert_int_equal(inet_pton(AF_INET6, s, a.b), 1);
	return a;
}

/* IPv6 nodes: equal priorities are settled by the 16 bytes of the address in network order. Each pair
 * is (lower, higher); the first differ in the last byte, the others in a byte whose order would flip if
 * the address were compared as host-order words (2001:db8::100 > 2001:db8::ff, 2001:db8:0:1:: above any
 * 2001:db8::/64 address), and the last pair differs in the first byte. */
static void test_ipv6_tie_break(void **state)
{
	static const char *const pairs[][2] = {
		{ "2001:db8::5", "2001:db8::6" },
		{ "2001:db8::ff", "2001:db8::100" },
		{ "2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::" },
		{ "2001:db8::1", "fd00::1" },
	};

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		struct vrrp_fsm_config lo = mkcfg(100, 1, 100, true), hi = lo;
		struct vrrp_advert a = mkadv(100, 1, 100, true);
		struct vrrp_fsm f;
		uint64_t t_m;

		lo.addr = addr6(pairs[i][0]);
		hi.addr = addr6(pairs[i][1]);
		/* The lower master yields to the higher one. */
		t_m = start_master(&f, &lo, T0);
		a.addr = hi.addr;
		assert_int_equal(advert_at(&f, a, t_m + 1), BAK);
		/* The higher master stays and re-announces. */
		t_m = start_master(&f, &hi, T0);
		a.addr = lo.addr;
		assert_int_equal(advert_at(&f, a, t_m + 1), ADV | GARP);
		/* A preempting backup of the higher address lets the lower master's timer run out; the lower
		 * backup defers to the higher master. */
		start_backup(&f, &hi, T0);
		assert_int_equal(advert_at(&f, a, T0 + 200), 0);
		assert_true(vrrp_fsm_deadline(&f) == T0 + 360);
		start_backup(&f, &lo, T0);
		a.addr = hi.addr;
		assert_int_equal(advert_at(&f, a, T0 + 200), 0);
		assert_true(vrrp_fsm_deadline(&f) == T0 + 200 + 360);
	}
}

/* Our own IPv6 address is an echo; one that differs only in its last bit is the peer's. The all-zero
 * address (::) is "none" and refused as ours. */
static void test_ipv6_own_address(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 1, 100, false);
	struct vrrp_advert a = mkadv(200, 1, 100, true);
	struct vrrp_fsm f;
	uint64_t t_m;

	c.addr = addr6("::");
	assert_int_equal(vrrp_fsm_config_check(&c, NULL), -1);
	c.addr = addr6("2001:db8::11");
	t_m = start_master(&f, &c, T0);
	a.addr = c.addr;
	assert_int_equal(advert_at(&f, a, t_m + 1), 0);
	assert_int_equal(f.cnt.rx_own_addr, 1);
	a.addr = addr6("2001:db8::10");
	assert_int_equal(advert_at(&f, a, t_m + 2), BAK);
}

static void test_master_hears_prio0(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, false);
	struct vrrp_fsm f;
	uint64_t t_m = start_master(&f, &c, T0);

	assert_int_equal(advert_at(&f, mkadv(0, 9, 100, false), t_m + 42), ADV);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_MASTER);
	assert_true(vrrp_fsm_deadline(&f) == t_m + 142);
	assert_int_equal(advert_at(&f, mkadv(0, 9, 100, true), t_m + 50), ADV);
}

/* Adverts the FSM refuses on its own: a bad interval, our own address. */
static void test_dropped_adverts(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, true);
	struct vrrp_fsm f, before;
	uint64_t t_m = start_master(&f, &c, T0);
	static const uint32_t bad_adv[] = { 0, 4, 40001, UINT32_MAX };

	for (size_t i = 0; i < sizeof(bad_adv) / sizeof(bad_adv[0]); i++) {
		memcpy(&before, &f, sizeof(f));
		assert_int_equal(advert_at(&f, mkadv(200, 9, bad_adv[i], true), t_m + 1), 0);
		assert_int_equal(f.cnt.rx_invalid, before.cnt.rx_invalid + 1);
		f.cnt.rx_invalid = before.cnt.rx_invalid;
		assert_memory_equal(&before, &f, sizeof(f));
	}
	/* Our own address at any priority: an echo, never a reason to yield or to answer. */
	assert_int_equal(advert_at(&f, mkadv(200, 5, 100, true), t_m + 1), 0);
	assert_int_equal(advert_at(&f, mkadv(100, 5, 100, true), t_m + 1), 0);
	assert_int_equal(advert_at(&f, mkadv(0, 5, 100, true), t_m + 1), 0);
	assert_int_equal(f.cnt.rx_own_addr, 3);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_MASTER);
	/* Same in BACKUP: no reset of the master-down timer. */
	start_backup(&f, &c, T0);
	assert_int_equal(advert_at(&f, mkadv(200, 5, 100, true), T0 + 100), 0);
	assert_int_equal(advert_at(&f, mkadv(200, 9, 4, true), T0 + 100), 0);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 360);
}

/* ---- preemption controls ---- */

static void test_preempt_delay(void **state)
{
	struct vrrp_fsm_config c = mkcfg(200, 5, 100, true);
	struct vrrp_fsm f;
	uint64_t t;

	c.preempt_delay_ms = 5000;
	start_backup(&f, &c, T0);
	/* A lower master keeps us back during the delay, on the master's schedule. */
	for (t = T0 + 1; t < T0 + 5000; t += 100) {
		assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), t), 0);
		assert_true(vrrp_fsm_deadline(&f) == t + 321);
		assert_int_equal(timer_at(&f, t + 99), 0);
	}
	/* From the end of the delay its adverts no longer reset the timer. */
	assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), T0 + 5000), 0);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 4901 + 321);
	assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), T0 + 5100), 0);
	assert_int_equal(fire(&f, &t), ADV | MAS);
	assert_true(t == T0 + 4901 + 321);
	/* A dead master is replaced during the delay too. */
	start_backup(&f, &c, T0);
	assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), T0 + 50), 0);
	assert_int_equal(fire(&f, &t), ADV | MAS);
	assert_true(t == T0 + 50 + 321);
	/* And so is one that steps down. */
	start_backup(&f, &c, T0);
	assert_int_equal(advert_at(&f, mkadv(0, 9, 100, true), T0 + 50), 0);
	assert_int_equal(fire(&f, &t), ADV | MAS);
	assert_true(t == T0 + 50 + 21);
}

/* The delay starts again when a fault clears (the node is as fresh as after startup). */
static void test_preempt_delay_after_fault(void **state)
{
	struct vrrp_fsm_config c = mkcfg(200, 5, 100, true);
	struct vrrp_fsm f;
	uint64_t t, t_clear = T0 + 20000;

	c.preempt_delay_ms = 1000;
	start_backup(&f, &c, T0);
	assert_int_equal(vrrp_fsm_fault(&f, true, T0 + 10000), FLT | ADV);
	assert_int_equal(vrrp_fsm_fault(&f, false, t_clear), BAK);
	assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), t_clear + 900), 0);
	assert_true(vrrp_fsm_deadline(&f) == t_clear + 900 + 321);
	assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), t_clear + 1000), 0);
	assert_int_equal(fire(&f, &t), ADV | MAS);
	assert_true(t == t_clear + 900 + 321);
}

static void test_can_preempt(void **state)
{
	struct vrrp_fsm_config c = mkcfg(200, 5, 100, true);
	struct vrrp_fsm f;
	uint64_t t;

	start_backup(&f, &c, T0);
	vrrp_fsm_set_can_preempt(&f, false);
	/* Bulk sync not done: a live lower master keeps the VIPs as long as it speaks. */
	for (t = T0 + 100; t < T0 + 100000; t += 100) {
		assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), t), 0);
		assert_int_equal(timer_at(&f, t + 99), 0);
	}
	/* But when it dies we take over, sync or not. */
	assert_int_equal(fire(&f, &t), ADV | MAS);
	assert_true(t == T0 + 99900 + 321);

	/* Once sync is done, the next lower advert no longer holds us back. */
	start_backup(&f, &c, T0);
	vrrp_fsm_set_can_preempt(&f, false);
	assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), T0 + 100), 0);
	vrrp_fsm_set_can_preempt(&f, true);
	assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), T0 + 200), 0);
	assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), T0 + 300), 0);
	assert_int_equal(fire(&f, &t), ADV | MAS);
	assert_true(t == T0 + 100 + 321);

	/* A master stepping down is replaced after our skew even without sync. */
	start_backup(&f, &c, T0);
	vrrp_fsm_set_can_preempt(&f, false);
	assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), T0 + 100), 0);
	assert_int_equal(advert_at(&f, mkadv(0, 9, 100, true), T0 + 150), 0);
	assert_int_equal(fire(&f, &t), ADV | MAS);
	assert_true(t == T0 + 150 + 21);
}

/* ---- graceful stop ---- */

static void test_stop_master_handover(void **state)
{
	struct vrrp_fsm_config c = mkcfg(200, 5, 100, true);
	struct vrrp_fsm f;
	struct vrrp_advert a;
	uint64_t t, t_m = start_master(&f, &c, T0), t_s = t_m + 30;

	assert_int_equal(vrrp_fsm_shutdown(&f, t_s), ADV);
	check_invariants(&f, t_s);
	assert_true(vrrp_fsm_stopping(&f));
	assert_int_equal(vrrp_fsm_state(&f), VRRP_MASTER);          /* still forwarding */
	vrrp_fsm_advert_fill(&f, &a);
	assert_int_equal(a.priority, 0);
	assert_true(a.master);
	assert_int_equal(vrrp_fsm_shutdown(&f, t_s + 1), 0);        /* a second signal changes nothing */
	/* Priority 0 every interval while waiting. */
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(fire(&f, &t), ADV);
		assert_true(t == t_s + 100u * (unsigned)i);
		assert_int_equal(vrrp_fsm_advert_priority(&f), 0);
		assert_int_equal(vrrp_fsm_state(&f), VRRP_MASTER);
	}
	/* The new master speaks: hand over and finish. Its priority does not matter. */
	assert_int_equal(advert_at(&f, mkadv(50, 9, 100, true), t + 5), BAK | DONE);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_BACKUP);
	assert_false(vrrp_fsm_stopping(&f));
	assert_true(vrrp_fsm_deadline(&f) == VRRP_NEVER);
	/* Finished means finished. */
	assert_int_equal(advert_at(&f, mkadv(250, 9, 100, true), t + 6), 0);
	assert_int_equal(vrrp_fsm_fault(&f, true, t + 7), 0);
	assert_int_equal(vrrp_fsm_shutdown(&f, t + 8), 0);
	assert_int_equal(vrrp_fsm_startup(&f, t + 9), 0);
	assert_int_equal(timer_at(&f, t + 100000), 0);
	assert_int_equal(vrrp_fsm_set_config(&f, &c, t + 10), 0);
	assert_true(vrrp_fsm_deadline(&f) == VRRP_NEVER);
}

static void test_stop_master_timeout(void **state)
{
	struct vrrp_fsm_config c = mkcfg(200, 5, 100, true);
	struct vrrp_fsm f;
	uint64_t t, t_s;
	unsigned n_adv = 0, act;

	c.stop_timeout_ms = 1050;
	t_s = start_master(&f, &c, T0) + 1;
	assert_int_equal(vrrp_fsm_shutdown(&f, t_s), ADV);
	while ((act = fire(&f, &t)) == ADV)
		n_adv++;
	assert_int_equal(act, BAK | DONE);
	assert_true(t == t_s + 1050);
	assert_int_equal(n_adv, 10);
	assert_true(vrrp_fsm_deadline(&f) == VRRP_NEVER);

	/* Timeout landing exactly on an advert: the stop wins. */
	c.stop_timeout_ms = 300;
	t_s = start_master(&f, &c, T0) + 1;
	assert_int_equal(vrrp_fsm_shutdown(&f, t_s), ADV);
	assert_int_equal(fire(&f, &t), ADV);
	assert_int_equal(fire(&f, &t), ADV);
	assert_int_equal(fire(&f, &t), BAK | DONE);
	assert_true(t == t_s + 300);
}

static void test_stop_master_no_wait(void **state)
{
	struct vrrp_fsm_config c = mkcfg(200, 5, 100, true);
	struct vrrp_fsm f;
	uint64_t t_s;

	c.stop_timeout_ms = 0;
	t_s = start_master(&f, &c, T0) + 1;
	assert_int_equal(vrrp_fsm_shutdown(&f, t_s), ADV | BAK | DONE);
	check_invariants(&f, t_s);
	assert_int_equal(vrrp_fsm_advert_priority(&f), 0);      /* the advert just asked for says 0 */
}

static void test_stop_master_ignores_others(void **state)
{
	struct vrrp_fsm_config c = mkcfg(200, 5, 100, true);
	struct vrrp_fsm f;
	uint64_t t_s = start_master(&f, &c, T0) + 1;

	assert_int_equal(vrrp_fsm_shutdown(&f, t_s), ADV);
	/* A peer that steps down too: no echo of priority 0, keep waiting. */
	assert_int_equal(advert_at(&f, mkadv(0, 9, 100, true), t_s + 1), 0);
	assert_int_equal(advert_at(&f, mkadv(0, 9, 100, false), t_s + 2), 0);
	/* A peer that does not claim MASTER has not taken over yet, whatever its rank. */
	assert_int_equal(advert_at(&f, mkadv(250, 9, 100, false), t_s + 3), 0);
	assert_int_equal(advert_at(&f, mkadv(50, 9, 100, false), t_s + 4), 0);
	assert_true(vrrp_fsm_stopping(&f));
	assert_int_equal(vrrp_fsm_state(&f), VRRP_MASTER);
	assert_true(vrrp_fsm_deadline(&f) == t_s + 100);
	assert_int_equal(advert_at(&f, mkadv(250, 9, 100, true), t_s + 5), BAK | DONE);
}

static void test_shutdown_not_master(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, true);
	struct vrrp_fsm f;
	struct vrrp_advert a;

	/* BACKUP: say priority 0 once and go. */
	start_backup(&f, &c, T0);
	assert_int_equal(vrrp_fsm_shutdown(&f, T0 + 10), ADV | DONE);
	check_invariants(&f, T0 + 10);
	vrrp_fsm_advert_fill(&f, &a);
	assert_int_equal(a.priority, 0);
	assert_false(a.master);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_BACKUP);
	assert_int_equal(timer_at(&f, T0 + 100000), 0);
	assert_int_equal(advert_at(&f, mkadv(0, 9, 100, true), T0 + 11), 0);

	/* INIT. */
	assert_int_equal(vrrp_fsm_init(&f, &c), 0);
	assert_int_equal(vrrp_fsm_shutdown(&f, T0), ADV | DONE);
	check_invariants(&f, T0);
	assert_int_equal(vrrp_fsm_startup(&f, T0), 0);

	/* FAULT. */
	start_backup(&f, &c, T0);
	assert_int_equal(vrrp_fsm_fault(&f, true, T0 + 1), FLT | ADV);
	assert_int_equal(vrrp_fsm_shutdown(&f, T0 + 2), ADV | DONE);
	check_invariants(&f, T0 + 2);
	assert_int_equal(vrrp_fsm_fault(&f, false, T0 + 3), 0);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_FAULT);
}

/* ---- release: lbd stops, vrrpd stays ---- */

static void test_release_master_handover(void **state)
{
	struct vrrp_fsm_config c = mkcfg(200, 5, 100, true);
	struct vrrp_fsm f;
	struct vrrp_advert a;
	uint64_t t, t_m = start_master(&f, &c, T0), t_r = t_m + 30;

	assert_int_equal(vrrp_fsm_release(&f, t_r), ADV);
	check_invariants(&f, t_r);
	assert_true(vrrp_fsm_stopping(&f));
	assert_true(vrrp_fsm_releasing(&f));
	assert_int_equal(vrrp_fsm_state(&f), VRRP_MASTER);          /* lbd still forwards */
	vrrp_fsm_advert_fill(&f, &a);
	assert_int_equal(a.priority, 0);
	assert_true(a.master);
	assert_int_equal(vrrp_fsm_release(&f, t_r + 1), 0);         /* level: repeating changes nothing */
	assert_int_equal(fire(&f, &t), ADV);
	assert_true(t == t_r + 100);
	/* The peer's priority-0 echo does not end it; the new master does. */
	assert_int_equal(advert_at(&f, mkadv(0, 9, 100, false), t + 1), 0);
	assert_int_equal(advert_at(&f, mkadv(50, 9, 100, true), t + 2), FLT | ADV);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_FAULT);
	assert_false(vrrp_fsm_stopping(&f));
	assert_false(vrrp_fsm_releasing(&f));
	assert_false(f.stopped);                                    /* the daemon stays */
	assert_int_equal(f.cnt.entered_fault, 1);
	/* FAULT advertises 0 every interval and ignores adverts until lbd is back. */
	assert_int_equal(fire(&f, &t), ADV);
	assert_int_equal(advert_at(&f, mkadv(50, 9, 100, true), t + 1), 0);
	assert_int_equal(vrrp_fsm_release(&f, t + 2), 0);
	assert_int_equal(vrrp_fsm_fault(&f, true, t + 3), 0);      /* the old lbd is gone: still FAULT */
	assert_int_equal(vrrp_fsm_fault(&f, false, t + 4), BAK);   /* a new lbd answers */
	assert_int_equal(vrrp_fsm_state(&f), VRRP_BACKUP);
	assert_true(vrrp_fsm_deadline(&f) == t + 4 + vrrp_master_down_ms(200, 100));
}

static void test_release_master_timeout(void **state)
{
	struct vrrp_fsm_config c = mkcfg(200, 5, 100, true);
	struct vrrp_fsm f;
	uint64_t t = 0, t_r;
	unsigned act;

	c.stop_timeout_ms = 350;
	t_r = start_master(&f, &c, T0) + 1;
	assert_int_equal(vrrp_fsm_release(&f, t_r), ADV);
	while ((act = fire(&f, &t)) == ADV)
		assert_int_equal(vrrp_fsm_state(&f), VRRP_MASTER);
	assert_int_equal(act, FLT | ADV);
	assert_true(t == t_r + 350);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_FAULT);
	assert_false(f.stopped);

	/* stop_timeout 0: nothing to wait for. */
	c.stop_timeout_ms = 0;
	t_r = start_master(&f, &c, T0) + 1;
	assert_int_equal(vrrp_fsm_release(&f, t_r), FLT | ADV);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_FAULT);
}

static void test_release_not_master(void **state)
{
	struct vrrp_fsm_config c = mkcfg(200, 5, 100, true);
	struct vrrp_fsm f;

	start_backup(&f, &c, T0);
	assert_int_equal(vrrp_fsm_release(&f, T0 + 5), FLT | ADV);
	check_invariants(&f, T0 + 5);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_FAULT);
	assert_int_equal(vrrp_fsm_init(&f, &c), 0);
	assert_int_equal(vrrp_fsm_release(&f, T0), FLT | ADV);     /* INIT too */
	assert_int_equal(vrrp_fsm_state(&f), VRRP_FAULT);
}

/* A stop signal during a release turns it into the daemon's own stop; a fault ends it in FAULT. */
static void test_release_then_shutdown_or_fault(void **state)
{
	struct vrrp_fsm_config c = mkcfg(200, 5, 100, true);
	struct vrrp_fsm f;
	uint64_t t = start_master(&f, &c, T0) + 1;

	assert_int_equal(vrrp_fsm_release(&f, t), ADV);
	assert_int_equal(vrrp_fsm_shutdown(&f, t + 1), 0);
	assert_true(vrrp_fsm_stopping(&f));
	assert_false(vrrp_fsm_releasing(&f));
	assert_int_equal(advert_at(&f, mkadv(50, 9, 100, true), t + 2), BAK | DONE);
	assert_true(f.stopped);

	t = start_master(&f, &c, T0) + 1;
	assert_int_equal(vrrp_fsm_release(&f, t), ADV);
	assert_int_equal(vrrp_fsm_fault(&f, true, t + 1), FLT | ADV);   /* lbd died mid-way: no STOP_DONE */
	check_invariants(&f, t + 1);
	assert_false(f.stopped);
	assert_int_equal(vrrp_fsm_state(&f), VRRP_FAULT);

	/* Shutdown in the FAULT a release left: the daemon leaves at once. */
	assert_int_equal(vrrp_fsm_shutdown(&f, t + 2), ADV | DONE);
}

/* ---- FAULT ---- */

/* Puts a fresh FSM in state `which` (with `stopping` for a stopping master); returns the time. */
static uint64_t reach(struct vrrp_fsm *f, const struct vrrp_fsm_config *c, int which)
{
	switch (which) {
	case 0:
		assert_int_equal(vrrp_fsm_init(f, c), 0);
		return T0;
	case 1:
		start_backup(f, c, T0);
		return T0 + 1;
	case 2:
		return start_master(f, c, T0) + 1;
	default: {
		uint64_t t = start_master(f, c, T0) + 1;
		assert_int_equal(vrrp_fsm_shutdown(f, t), ADV);
		return t + 1;
	}
	}
}

static void test_fault_from_each_state(void **state)
{
	static const unsigned want[] = { FLT | ADV, FLT | ADV, FLT | ADV, FLT | ADV | DONE };
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, true);

	for (int which = 0; which < 4; which++) {
		struct vrrp_fsm f;
		struct vrrp_advert a;
		uint64_t t, t_f = reach(&f, &c, which);

		assert_int_equal(vrrp_fsm_fault(&f, false, t_f), 0);   /* no fault to clear */
		assert_int_equal(vrrp_fsm_fault(&f, true, t_f), want[which]);
		check_invariants(&f, t_f);
		assert_int_equal(vrrp_fsm_state(&f), VRRP_FAULT);
		assert_int_equal(f.cnt.entered_fault, 1);
		vrrp_fsm_advert_fill(&f, &a);
		assert_int_equal(a.priority, 0);
		assert_false(a.master);
		if (which == 3) {
			/* A stopping master that loses lbd has nothing left to hand over. */
			assert_true(vrrp_fsm_deadline(&f) == VRRP_NEVER);
			continue;
		}
		assert_int_equal(vrrp_fsm_fault(&f, true, t_f + 1), 0);    /* level, not edge */
		for (int i = 1; i <= 5; i++) {
			assert_int_equal(fire(&f, &t), ADV);
			assert_true(t == t_f + 100u * (unsigned)i);
			assert_int_equal(vrrp_fsm_state(&f), VRRP_FAULT);
		}
		assert_int_equal(vrrp_fsm_fault(&f, false, t + 3), BAK);
		check_invariants(&f, t + 3);
		assert_int_equal(vrrp_fsm_state(&f), VRRP_BACKUP);
		assert_true(vrrp_fsm_deadline(&f) == t + 3 + 360);
		assert_int_equal(vrrp_fsm_fault(&f, false, t + 4), 0);
	}
}

static void test_fault_ignores_adverts(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, true);
	struct vrrp_fsm f, before;
	uint64_t t_m = start_master(&f, &c, T0);

	/* A master that learnt a slow master's interval once must forget it in FAULT. */
	assert_int_equal(advert_at(&f, mkadv(200, 9, 1000, true), t_m + 1), BAK);
	assert_int_equal(vrrp_fsm_fault(&f, true, t_m + 2), FLT | ADV);
	memcpy(&before, &f, sizeof(f));
	assert_int_equal(advert_at(&f, mkadv(0, 9, 100, true), t_m + 3), 0);
	assert_int_equal(advert_at(&f, mkadv(50, 9, 100, true), t_m + 4), 0);
	assert_int_equal(advert_at(&f, mkadv(250, 9, 100, true), t_m + 5), 0);
	assert_int_equal(f.cnt.rx_ignored, before.cnt.rx_ignored + 3);
	f.cnt.rx_ignored = before.cnt.rx_ignored;
	assert_memory_equal(&before, &f, sizeof(f));
	assert_int_equal(vrrp_fsm_fault(&f, false, t_m + 10), BAK);
	assert_true(vrrp_fsm_deadline(&f) == t_m + 10 + 360);
}

/* ---- live reload ---- */

static void test_set_config_master(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, true), c2;
	struct vrrp_fsm f;
	uint64_t t, t_m = start_master(&f, &c, T0);

	/* Nothing that changes the advert: timers untouched. */
	c2 = c;
	c2.preempt = false;
	c2.preempt_delay_ms = 77;
	assert_int_equal(vrrp_fsm_set_config(&f, &c2, t_m + 10), 0);
	assert_true(vrrp_fsm_deadline(&f) == t_m + 100);
	/* New priority: advertise now so the peer judges our new rank. */
	c2.priority = 50;
	assert_int_equal(vrrp_fsm_set_config(&f, &c2, t_m + 20), ADV);
	assert_int_equal(vrrp_fsm_advert_priority(&f), 50);
	assert_true(vrrp_fsm_deadline(&f) == t_m + 120);
	/* New interval: advertise now and keep the new pace. */
	c2.advert_ms = 1000;
	assert_int_equal(vrrp_fsm_set_config(&f, &c2, t_m + 30), ADV);
	assert_true(vrrp_fsm_deadline(&f) == t_m + 1030);
	assert_int_equal(fire(&f, &t), ADV);
	assert_true(vrrp_fsm_deadline(&f) == t + 1000);
	/* The new priority is the one compared: 60 now outranks us. */
	assert_int_equal(advert_at(&f, mkadv(60, 1, 100, true), t + 1), BAK);

	/* While stopping, a reload does not end the stop nor raise the advertised priority. */
	t_m = start_master(&f, &c, T0);
	assert_int_equal(vrrp_fsm_shutdown(&f, t_m + 1), ADV);
	c2 = c;
	c2.priority = 200;
	c2.advert_ms = 20;
	assert_int_equal(vrrp_fsm_set_config(&f, &c2, t_m + 2), 0);
	assert_int_equal(vrrp_fsm_advert_priority(&f), 0);
	assert_true(vrrp_fsm_deadline(&f) == t_m + 22);
	assert_true(vrrp_fsm_stopping(&f));
}

static void test_set_config_backup(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 1000, true), c2;
	struct vrrp_fsm f;
	uint64_t t;

	/* A faster interval before any master spoke: the timer shrinks to the new Master_Down_Interval. */
	start_backup(&f, &c, T0);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 3609);
	c2 = c;
	c2.advert_ms = 100;
	assert_int_equal(vrrp_fsm_set_config(&f, &c2, T0 + 10), 0);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 10 + 360);
	/* A slower one never postpones takeover. */
	c2.advert_ms = 2000;
	assert_int_equal(vrrp_fsm_set_config(&f, &c2, T0 + 20), 0);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 10 + 360);

	/* Raising our priority above the master's makes a preempting backup take over. */
	c = mkcfg(100, 5, 100, true);
	start_backup(&f, &c, T0);
	for (t = T0 + 100; t <= T0 + 1000; t += 100)
		assert_int_equal(advert_at(&f, mkadv(150, 9, 100, true), t), 0);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 1000 + 360);
	c2 = c;
	c2.priority = 200;
	assert_int_equal(vrrp_fsm_set_config(&f, &c2, T0 + 1050), 0);
	assert_int_equal(vrrp_fsm_master_down_ms(&f), 321);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 1000 + 360);      /* the sooner of old and new */
	assert_int_equal(advert_at(&f, mkadv(150, 9, 100, true), T0 + 1100), 0);
	assert_int_equal(advert_at(&f, mkadv(150, 9, 100, true), T0 + 1200), 0);
	assert_int_equal(fire(&f, &t), ADV | MAS);
	assert_true(t == T0 + 1000 + 360);
	/* Lowering it again below a master makes its adverts hold us back once more. */
	c2.priority = 100;
	start_backup(&f, &c2, T0);
	c2.priority = 10;
	assert_int_equal(vrrp_fsm_set_config(&f, &c2, T0 + 10), 0);
	assert_int_equal(advert_at(&f, mkadv(50, 9, 100, true), T0 + 100), 0);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 100 + 300 + 96);

	/* A longer preempt_delay counts from the same start. */
	c = mkcfg(200, 5, 100, true);
	c.preempt_delay_ms = 500;
	start_backup(&f, &c, T0);
	assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), T0 + 100), 0);
	c2 = c;
	c2.preempt_delay_ms = 3000;
	assert_int_equal(vrrp_fsm_set_config(&f, &c2, T0 + 150), 0);
	for (t = T0 + 200; t < T0 + 3000; t += 100) {
		assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), t), 0);
		assert_true(vrrp_fsm_deadline(&f) == t + 321);
	}
	assert_int_equal(advert_at(&f, mkadv(100, 9, 100, true), T0 + 3000), 0);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 2900 + 321);

	/* FAULT picks up a faster interval for its priority-0 adverts. */
	c = mkcfg(100, 5, 1000, true);
	start_backup(&f, &c, T0);
	assert_int_equal(vrrp_fsm_fault(&f, true, T0 + 1), FLT | ADV);
	c2 = c;
	c2.advert_ms = 50;
	assert_int_equal(vrrp_fsm_set_config(&f, &c2, T0 + 2), 0);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 52);

	/* INIT just takes it. */
	assert_int_equal(vrrp_fsm_init(&f, &c), 0);
	assert_int_equal(vrrp_fsm_set_config(&f, &c2, T0), 0);
	assert_int_equal(vrrp_fsm_startup(&f, T0), BAK);
	assert_true(vrrp_fsm_deadline(&f) == T0 + 150 + 30);
}

static void test_set_config_invalid(void **state)
{
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, true), bad = c;
	struct vrrp_fsm f, before;

	start_master(&f, &c, T0);
	memcpy(&before, &f, sizeof(f));
	bad.priority = 0;
	assert_int_equal(vrrp_fsm_set_config(&f, &bad, T0 + 500), 0);
	bad = c;
	bad.advert_ms = 4;
	assert_int_equal(vrrp_fsm_set_config(&f, &bad, T0 + 500), 0);
	assert_memory_equal(&before, &f, sizeof(f));
}

/* ---- random event storm on one FSM: the invariants and the deadline contract hold throughout ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static void test_random_events(void **state)
{
	static const uint8_t prios[] = { 0, 1, 50, 100, 101, 200, 254, 255 };
	struct vrrp_fsm_config c = mkcfg(100, 5, 100, true);
	struct vrrp_fsm f;
	uint64_t now = T0;
	unsigned seen_states = 0;

	c.preempt_delay_ms = 700;
	c.stop_timeout_ms = 900;
	start_backup(&f, &c, now);
	for (int i = 0; i < 200000; i++) {
		now += rnd(60);     /* may stay put: several events in one ms */
		if (now >= vrrp_fsm_deadline(&f))
			timer_at(&f, now);      /* catch up before anything else, as the glue does */
		switch (rnd(20)) {
		case 0:
			vrrp_fsm_fault(&f, rnd(2), now);
			break;
		case 1:
			if (rnd(50) == 0)
				vrrp_fsm_shutdown(&f, now);
			else if (rnd(20) == 0)
				vrrp_fsm_release(&f, now);
			break;
		case 2:
			vrrp_fsm_set_can_preempt(&f, rnd(2));
			break;
		case 3: {
			struct vrrp_fsm_config c2 = c;
			c2.priority = (uint8_t)(1 + rnd(254));
			c2.advert_ms = 10 + rnd(300);
			c2.preempt = rnd(2);
			vrrp_fsm_set_config(&f, &c2, now);
			break;
		}
		default: {
			struct vrrp_advert a = mkadv(prios[rnd(8)], 1 + rnd(9), rnd(4) ? 100 : rnd(600), rnd(2));
			vrrp_fsm_advert(&f, &a, now);
			break;
		}
		}
		check_invariants(&f, now);
		now += rnd(3);
		timer_at(&f, now);
		seen_states |= 1u << vrrp_fsm_state(&f);
		if (f.stopped) {
			start_backup(&f, &c, now);
			now++;
		}
	}
	assert_int_equal(seen_states & 0xe, 0xe);  /* BACKUP, MASTER and FAULT all visited */
}

/* ---- two machines over a fake wire ---- */

#define WIRE_DELAY 1
#define QMAX 64

struct node {
	struct vrrp_fsm f;
	struct vrrp_fsm_config cfg;
	bool alive;             /* the process runs */
	bool active;            /* what lbd was told: forwarding and answering ARP */
	bool stop_done;
	uint64_t last_rx;       /* last advert delivered to it */
	uint64_t became_master_at;
};

struct msg {
	uint64_t at;
	int to;
	struct vrrp_advert a;
};

struct sim {
	struct node n[2];
	struct msg q[QMAX];
	size_t nq;
	uint64_t now;
	bool cut[2];            /* adverts from node i are lost */
	unsigned loss_pct;      /* random loss, both ways */
	uint64_t n_garp;
};

static void sim_apply(struct sim *s, int i, unsigned act)
{
	struct node *nd = &s->n[i];

	check_invariants(&nd->f, s->now);
	if (act & ADV) {
		struct msg *m;

		assert_true(s->nq < QMAX);
		m = &s->q[s->nq];
		m->at = s->now + WIRE_DELAY;
		m->to = 1 - i;
		vrrp_fsm_advert_fill(&nd->f, &m->a);
		if (!s->cut[i] && !(s->loss_pct && rnd(100) < s->loss_pct))
			s->nq++;
	}
	if (act & MAS) {
		assert_false(nd->active);
		nd->active = true;
		nd->became_master_at = s->now;
	}
	if (act & (BAK | FLT)) {
		assert_false((act & MAS) != 0);
		nd->active = false;
	}
	if (act & GARP) {
		assert_true(nd->active);
		s->n_garp++;
	}
	if (act & DONE) {
		assert_false(nd->active);
		nd->stop_done = true;
		nd->alive = false;
	}
	if (nd->alive)
		assert_int_equal(nd->active, vrrp_fsm_state(&nd->f) == VRRP_MASTER);
}

static void sim_start(struct sim *s, int i)
{
	struct node *nd = &s->n[i];

	assert_int_equal(vrrp_fsm_init(&nd->f, &nd->cfg), 0);
	nd->alive = true;
	nd->active = false;
	nd->stop_done = false;
	nd->became_master_at = 0;
	sim_apply(s, i, vrrp_fsm_startup(&nd->f, s->now));
}

/* The process dies: lbd is fenced with it, its adverts stop. */
static void sim_kill(struct sim *s, int i)
{
	s->n[i].alive = false;
	s->n[i].active = false;
}

static int sim_masters(const struct sim *s)
{
	return (s->n[0].alive && s->n[0].active) + (s->n[1].alive && s->n[1].active);
}

/* One ms: deliver what arrives now, then run due timers. */
static void sim_step(struct sim *s)
{
	size_t k = 0;

	s->now++;
	for (size_t j = 0; j < s->nq; j++) {
		struct msg m = s->q[j];

		if (m.at > s->now) {
			s->q[k++] = m;
			continue;
		}
		if (!s->n[m.to].alive)
			continue;
		s->n[m.to].last_rx = s->now;
		sim_apply(s, m.to, vrrp_fsm_advert(&s->n[m.to].f, &m.a, s->now));
	}
	s->nq = k;
	/* A reply queued during delivery may not arrive in this same ms. */
	for (size_t j = 0; j < s->nq; j++)
		assert_true(s->q[j].at > s->now);
	for (int i = 0; i < 2; i++) {
		struct node *nd = &s->n[i];

		if (nd->alive && vrrp_fsm_deadline(&nd->f) <= s->now)
			sim_apply(s, i, timer_at(&nd->f, s->now));
		if (nd->alive)
			assert_true(vrrp_fsm_deadline(&nd->f) > s->now);
	}
}

/* Runs ms steps; with must_have_master, every step must end with at least one active node. */
static void sim_run(struct sim *s, uint64_t ms, bool must_have_master)
{
	for (uint64_t e = s->now + ms; s->now < e;) {
		sim_step(s);
		if (must_have_master)
			assert_true(sim_masters(s) >= 1);
	}
}

static void sim_run_one_master(struct sim *s, uint64_t ms, int who)
{
	for (uint64_t e = s->now + ms; s->now < e;) {
		sim_step(s);
		assert_int_equal(sim_masters(s), 1);
		assert_true(s->n[who].active);
	}
}

static void sim_init(struct sim *s, struct vrrp_fsm_config a, struct vrrp_fsm_config b)
{
	memset(s, 0, sizeof(*s));
	s->now = T0;
	s->n[0].cfg = a;
	s->n[1].cfg = b;
	sim_start(s, 0);
	sim_start(s, 1);
}

/* Elect, kill the master, restart it: preemption as configured, never a gap once elected. */
static void sim_kill_restart(bool preempt)
{
	struct sim s;
	uint32_t md_a = vrrp_master_down_ms(200, 100), md_b = vrrp_master_down_ms(100, 100);

	sim_init(&s, mkcfg(200, 1, 100, preempt), mkcfg(100, 2, 100, preempt));
	/* Both start together: the higher priority's shorter timer elects it, and the other never rises. */
	sim_run(&s, md_a, false);
	assert_true(s.n[0].active);
	assert_true(s.n[0].became_master_at == T0 + md_a);
	sim_run_one_master(&s, 10000, 0);
	assert_int_equal(s.n[1].f.cnt.became_master, 0);

	/* Kill A: B takes over exactly Master_Down_Interval after A's last advert reached it. */
	sim_kill(&s, 0);
	sim_run(&s, md_b + 5, false);
	assert_true(s.n[1].active);
	assert_true(s.n[1].became_master_at == s.n[1].last_rx + md_b);
	sim_run_one_master(&s, 5000, 1);

	/* Restart A. B keeps the VIPs at least until A takes them. */
	uint64_t t_restart = s.now;
	sim_start(&s, 0);
	if (preempt) {
		sim_run(&s, md_a + 1, true);
		assert_true(s.n[0].became_master_at == t_restart + md_a);
		sim_run_one_master(&s, 10000, 0);
	} else {
		sim_run_one_master(&s, 60000, 1);
		assert_int_equal(s.n[0].f.cnt.became_master, 0);
	}
}

static void test_sim_kill_restart_preempt(void **state)
{
	sim_kill_restart(true);
}

static void test_sim_kill_restart_no_preempt(void **state)
{
	sim_kill_restart(false);
}

/* Equal priorities starting together: both rise, the lower address yields one wire delay later. */
static void test_sim_equal_priority(void **state)
{
	struct sim s;
	uint32_t md = vrrp_master_down_ms(100, 100);

	sim_init(&s, mkcfg(100, 1, 100, false), mkcfg(100, 2, 100, false));
	sim_run(&s, md, false);
	assert_int_equal(sim_masters(&s), 2);
	sim_step(&s);
	assert_false(s.n[0].active);
	assert_true(s.n[1].active);
	assert_int_equal(s.n[0].f.cnt.became_backup, 1);
	assert_int_equal(s.n[1].f.cnt.became_backup, 0);
	assert_true(s.n_garp >= 1);
	sim_run_one_master(&s, 10000, 1);
}

/* The same with IPv6 nodes: 2001:db8::12 outranks 2001:db8::11. */
static void test_sim_equal_priority_ipv6(void **state)
{
	struct vrrp_fsm_config a = mkcfg(100, 1, 100, false), b = a;
	struct sim s;

	a.addr = addr6("2001:db8::12");
	b.addr = addr6("2001:db8::11");
	sim_init(&s, a, b);
	sim_run(&s, vrrp_master_down_ms(100, 100), false);
	assert_int_equal(sim_masters(&s), 2);
	sim_step(&s);
	assert_true(s.n[0].active);
	assert_false(s.n[1].active);
	sim_run_one_master(&s, 10000, 0);
}

/* A link cut in both directions makes two masters; when it heals the rank decides at once. */
static void test_sim_split_brain_heals(void **state)
{
	struct sim s;

	sim_init(&s, mkcfg(100, 1, 100, false), mkcfg(200, 2, 100, false));
	sim_run(&s, 2000, false);
	sim_run_one_master(&s, 1000, 1);
	s.cut[0] = s.cut[1] = true;
	sim_run(&s, 1000, true);
	assert_int_equal(sim_masters(&s), 2);
	s.cut[0] = s.cut[1] = false;
	sim_run(&s, 101, true);         /* one interval: the next advert from either side settles it */
	assert_int_equal(sim_masters(&s), 1);
	assert_true(s.n[1].active);
	sim_run_one_master(&s, 5000, 1);
}

/* Bulk sync not done on the restarted node: it waits, then preempts once allowed. */
static void test_sim_can_preempt(void **state)
{
	struct sim s;
	uint32_t md_a = vrrp_master_down_ms(200, 100);

	sim_init(&s, mkcfg(200, 1, 100, true), mkcfg(100, 2, 100, true));
	sim_run(&s, 2000, false);
	sim_kill(&s, 0);
	sim_run(&s, 1000, false);
	sim_run_one_master(&s, 100, 1);
	sim_start(&s, 0);
	vrrp_fsm_set_can_preempt(&s.n[0].f, false);
	sim_run_one_master(&s, 30000, 1);
	vrrp_fsm_set_can_preempt(&s.n[0].f, true);
	uint64_t t_ok = s.now;
	sim_run(&s, md_a + 1, true);
	assert_true(s.n[0].active);
	/* The timer was last reset by B's advert before t_ok. */
	assert_true(s.n[0].became_master_at <= t_ok + md_a);
	sim_run_one_master(&s, 5000, 0);
}

/* lbd of the master fails: the peer takes over after its skew; when it recovers it preempts back. */
static void test_sim_fault(void **state)
{
	struct sim s;
	uint32_t md_a = vrrp_master_down_ms(200, 100);

	sim_init(&s, mkcfg(200, 1, 100, true), mkcfg(100, 2, 100, true));
	sim_run(&s, 2000, false);
	sim_run_one_master(&s, 100, 0);
	uint64_t t_f = s.now;
	sim_apply(&s, 0, vrrp_fsm_fault(&s.n[0].f, true, s.now));
	sim_run(&s, WIRE_DELAY + vrrp_skew_ms(100, 100), false);
	assert_true(s.n[1].active);
	assert_true(s.n[1].became_master_at == t_f + WIRE_DELAY + vrrp_skew_ms(100, 100));
	sim_run_one_master(&s, 5000, 1);
	assert_int_equal(vrrp_fsm_state(&s.n[0].f), VRRP_FAULT);
	uint64_t t_c = s.now;
	sim_apply(&s, 0, vrrp_fsm_fault(&s.n[0].f, false, s.now));
	sim_run(&s, md_a + 1, true);
	assert_true(s.n[0].became_master_at == t_c + md_a);
	sim_run_one_master(&s, 5000, 0);
}

/* Graceful stop of the master for many priorities and intervals: never a ms without a master. */
static void test_sim_graceful_stop(void **state)
{
	static const struct { uint8_t pa, pb; bool preempt; uint32_t adv; } tab[] = {
		{ 200, 100, true, 100 }, { 200, 100, false, 20 }, { 254, 1, true, 1000 },
		{ 100, 100, false, 100 }, { 2, 1, true, 40000 }, { 150, 254, false, 20 },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		struct vrrp_fsm_config ca = mkcfg(tab[i].pa, 1, tab[i].adv, tab[i].preempt);
		struct vrrp_fsm_config cb = mkcfg(tab[i].pb, 2, tab[i].adv, tab[i].preempt);
		struct sim s;
		int m, o;

		ca.stop_timeout_ms = cb.stop_timeout_ms = 10 * tab[i].adv;
		sim_init(&s, ca, cb);
		sim_run(&s, 5 * tab[i].adv, false);
		assert_int_equal(sim_masters(&s), 1);
		m = s.n[0].active ? 0 : 1;
		o = 1 - m;
		sim_run_one_master(&s, 3 * tab[i].adv + 7, m);

		uint64_t t_s = s.now;
		uint32_t skew = vrrp_skew_ms(s.n[o].cfg.priority, tab[i].adv);
		sim_apply(&s, m, vrrp_fsm_shutdown(&s.n[m].f, s.now));
		assert_true(s.n[m].active);
		sim_run(&s, WIRE_DELAY + skew + WIRE_DELAY, true);
		/* The other rose after its skew; the stopping one left when it heard it. */
		assert_true(s.n[o].became_master_at == t_s + WIRE_DELAY + skew);
		assert_true(s.n[m].stop_done);
		sim_run_one_master(&s, 20 * tab[i].adv, o);
	}
}

/* Graceful stop of the backup: it leaves at once and the master is untouched. */
static void test_sim_stop_backup(void **state)
{
	struct sim s;

	sim_init(&s, mkcfg(200, 1, 100, true), mkcfg(100, 2, 100, true));
	sim_run(&s, 2000, false);
	sim_apply(&s, 1, vrrp_fsm_shutdown(&s.n[1].f, s.now));
	assert_true(s.n[1].stop_done);
	sim_run_one_master(&s, 5000, 0);
	assert_int_equal(s.n[0].f.cnt.became_backup, 0);
}

/* Graceful stop with the peer gone: the master forwards until the timeout, then leaves. */
static void test_sim_stop_alone(void **state)
{
	struct vrrp_fsm_config ca = mkcfg(200, 1, 100, true);
	struct sim s;

	ca.stop_timeout_ms = 2500;
	sim_init(&s, ca, mkcfg(100, 2, 100, true));
	sim_run(&s, 2000, false);
	sim_kill(&s, 1);
	sim_run(&s, 2000, false);
	uint64_t t_s = s.now;
	sim_apply(&s, 0, vrrp_fsm_shutdown(&s.n[0].f, s.now));
	while (!s.n[0].stop_done) {
		assert_true(s.n[0].active);
		sim_step(&s);
	}
	assert_true(s.now == t_s + 2500);
}

/* lbd of the master stops, its vrrpd stays (release): the peer takes over without a gap; when lbd is
 * back the node returns as BACKUP and, with preemption, takes the VIPs back, again without a gap. */
static void test_sim_release(void **state)
{
	for (int preempt = 0; preempt < 2; preempt++) {
		struct sim s;
		uint32_t skew = vrrp_skew_ms(100, 20);

		sim_init(&s, mkcfg(200, 1, 20, preempt), mkcfg(100, 2, 20, preempt));
		sim_run(&s, 200, false);
		sim_run_one_master(&s, 100, 0);
		uint64_t t_r = s.now;
		sim_apply(&s, 0, vrrp_fsm_release(&s.n[0].f, s.now));
		sim_run(&s, WIRE_DELAY + skew + WIRE_DELAY, true);
		assert_true(s.n[1].became_master_at == t_r + WIRE_DELAY + skew);
		assert_int_equal(vrrp_fsm_state(&s.n[0].f), VRRP_FAULT);
		sim_run_one_master(&s, 1000, 1);
		/* lbd back */
		sim_apply(&s, 0, vrrp_fsm_fault(&s.n[0].f, false, s.now));
		assert_int_equal(vrrp_fsm_state(&s.n[0].f), VRRP_BACKUP);
		sim_run(&s, 1000, true);
		sim_run_one_master(&s, 1000, preempt ? 0 : 1);
	}
}

/* 5% loss both ways and random crashes, faults and reloads: whenever things calm down the pair
 * settles on the higher-ranked live node, and a graceful stop never leaves a gap. */
static void test_sim_chaos(void **state)
{
	struct sim s;

	sim_init(&s, mkcfg(180, 1, 50, true), mkcfg(120, 2, 50, true));
	for (int round = 0; round < 300; round++) {
		s.loss_pct = 5;
		for (int k = 0; k < 20; k++) {
			int i = (int)rnd(2);
			switch (rnd(8)) {
			case 0:
				if (s.n[i].alive)
					sim_kill(&s, i);
				else
					sim_start(&s, i);
				break;
			case 1:
				if (s.n[i].alive)
					sim_apply(&s, i, vrrp_fsm_fault(&s.n[i].f, rnd(2), s.now));
				break;
			case 2:
				if (s.n[i].alive) {
					s.n[i].cfg.priority = (uint8_t)(1 + rnd(254));
					sim_apply(&s, i, vrrp_fsm_set_config(&s.n[i].f, &s.n[i].cfg, s.now));
				}
				break;
			default:
				break;
			}
			sim_run(&s, rnd(400), false);
		}
		/* Calm: both alive, no fault, no loss, distinct priorities. */
		s.loss_pct = 0;
		for (int i = 0; i < 2; i++) {
			if (!s.n[i].alive)
				sim_start(&s, i);
			sim_apply(&s, i, vrrp_fsm_fault(&s.n[i].f, false, s.now));
		}
		if (s.n[0].cfg.priority == s.n[1].cfg.priority) {
			s.n[0].cfg.priority = s.n[1].cfg.priority == 254 ? 1 : s.n[1].cfg.priority + 1;
			sim_apply(&s, 0, vrrp_fsm_set_config(&s.n[0].f, &s.n[0].cfg, s.now));
		}
		int want = s.n[0].cfg.priority > s.n[1].cfg.priority ? 0 : 1;
		sim_run(&s, 2 * vrrp_master_down_ms(1, 50) + 50, false);
		sim_run_one_master(&s, 500, want);
		if (round % 3 == 0) {
			sim_apply(&s, want, vrrp_fsm_shutdown(&s.n[want].f, s.now));
			sim_run(&s, 200, true);
			assert_true(s.n[want].stop_done);
			sim_run_one_master(&s, 500, 1 - want);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_check),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_startup_to_backup),
		cmocka_unit_test(test_skew_math),
		cmocka_unit_test(test_backup_hears_ranks),
		cmocka_unit_test(test_backup_learns_master_interval),
		cmocka_unit_test(test_backup_prio0_takeover),
		cmocka_unit_test(test_master_advert_timer),
		cmocka_unit_test(test_master_hears_higher),
		cmocka_unit_test(test_master_hears_lower),
		cmocka_unit_test(test_master_equal_priority_tie),
		cmocka_unit_test(test_ipv6_tie_break),
		cmocka_unit_test(test_ipv6_own_address),
		cmocka_unit_test(test_master_hears_prio0),
		cmocka_unit_test(test_dropped_adverts),
		cmocka_unit_test(test_preempt_delay),
		cmocka_unit_test(test_preempt_delay_after_fault),
		cmocka_unit_test(test_can_preempt),
		cmocka_unit_test(test_stop_master_handover),
		cmocka_unit_test(test_stop_master_timeout),
		cmocka_unit_test(test_stop_master_no_wait),
		cmocka_unit_test(test_stop_master_ignores_others),
		cmocka_unit_test(test_shutdown_not_master),
		cmocka_unit_test(test_release_master_handover),
		cmocka_unit_test(test_release_master_timeout),
		cmocka_unit_test(test_release_not_master),
		cmocka_unit_test(test_release_then_shutdown_or_fault),
		cmocka_unit_test(test_fault_from_each_state),
		cmocka_unit_test(test_fault_ignores_adverts),
		cmocka_unit_test(test_set_config_master),
		cmocka_unit_test(test_set_config_backup),
		cmocka_unit_test(test_set_config_invalid),
		cmocka_unit_test(test_random_events),
		cmocka_unit_test(test_sim_kill_restart_preempt),
		cmocka_unit_test(test_sim_kill_restart_no_preempt),
		cmocka_unit_test(test_sim_equal_priority),
		cmocka_unit_test(test_sim_equal_priority_ipv6),
		cmocka_unit_test(test_sim_split_brain_heals),
		cmocka_unit_test(test_sim_can_preempt),
		cmocka_unit_test(test_sim_fault),
		cmocka_unit_test(test_sim_graceful_stop),
		cmocka_unit_test(test_sim_stop_backup),
		cmocka_unit_test(test_sim_stop_alone),
		cmocka_unit_test(test_sim_release),
		cmocka_unit_test(test_sim_chaos),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
