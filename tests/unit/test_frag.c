/* Unit tests for lbd/frag.c: the later fragments of a datagram find its first fragment's service, other
 * datagrams do not, entries expire, and two tables place the same datagram in different slots. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "lbd/frag.h"

static struct frag_key key(uint32_t src, uint16_t id)
{
	struct frag_key k = { .saddr = ipaddr_from_v4(htonl(0xc6336400u + src)),
			      .daddr = ipaddr_from_v4(htonl(0xc0000264u)), .id = htons(id), .proto = 17 };
	return k;
}

static void test_later_fragments_follow_the_first(void **state)
{
	struct frag_table *t = malloc(sizeof(*t));
	struct frag_key a = key(1, 7), b = key(1, 8), c = key(2, 7);

	(void)state;
	frag_init(t);
	assert_int_equal(frag_recall(t, &a, 0), FRAG_NONE);
	frag_remember(t, &a, 3, 1000);
	assert_int_equal(frag_recall(t, &a, 1001), 3);
	assert_int_equal(frag_recall(t, &b, 1001), FRAG_NONE);     /* another datagram of the same pair */
	assert_int_equal(frag_recall(t, &c, 1001), FRAG_NONE);     /* same ID from another client */
	c.proto = 6;
	assert_int_equal(frag_recall(t, &c, 1001), FRAG_NONE);
	assert_int_equal(frag_recall(t, &a, 1000 + FRAG_TTL_MS - 1), 3);
	assert_int_equal(frag_recall(t, &a, 1000 + FRAG_TTL_MS), FRAG_NONE);
	frag_remember(t, &a, 0, 2000);                                /* the ID came round again */
	assert_int_equal(frag_recall(t, &a, 2001), 0);
	free(t);
}

/* A full table keeps the newest datagrams: every one of FRAG_SLOTS / 4 recent ones is still found or its
 * slot was taken by a newer one, never answered with another datagram's service. */
static void test_collisions_never_answer_wrongly(void **state)
{
	struct frag_table *t = malloc(sizeof(*t));
	unsigned found = 0, n = FRAG_SLOTS / 4;

	(void)state;
	frag_init(t);
	for (unsigned i = 0; i < n; i++) {
		struct frag_key k = key(i % 200, (uint16_t)i);
		frag_remember(t, &k, (uint16_t)(i % 7), 5);
	}
	for (unsigned i = 0; i < n; i++) {
		struct frag_key k = key(i % 200, (uint16_t)i);
		uint16_t s = frag_recall(t, &k, 6);
		assert_true(s == FRAG_NONE || s == i % 7);
		found += s != FRAG_NONE;
	}
	assert_true(found > n * 3 / 4);  /* a quarter full: few slots shared */
	free(t);
}

static unsigned slot_of(const struct frag_table *t, const struct frag_key *k)
{
	for (unsigned i = 0; i < FRAG_SLOTS; i++)
		if (t->e[i].service != FRAG_NONE && !memcmp(&t->e[i].key, k, sizeof(*k)))
			return i;
	return FRAG_SLOTS;
}

static void test_slots_are_keyed(void **state)
{
	struct frag_table *t1 = calloc(1, sizeof(*t1)), *t2 = calloc(1, sizeof(*t2));
	unsigned differ = 0;

	(void)state;
	for (unsigned i = 0; i < 16; i++) {
		struct frag_key k = key(i, 1);
		frag_init(t1);
		frag_init(t2);
		frag_remember(t1, &k, 1, 0);
		frag_remember(t2, &k, 1, 0);
		differ += slot_of(t1, &k) != slot_of(t2, &k);
	}
	assert_true(differ >= 12);
	free(t1);
	free(t2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_later_fragments_follow_the_first),
		cmocka_unit_test(test_collisions_never_answer_wrongly),
		cmocka_unit_test(test_slots_are_keyed),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
