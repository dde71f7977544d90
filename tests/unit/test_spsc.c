/* Unit tests for lbd/spsc.h: fill and drain at the edges (empty, full, index wrap-around), and two
 * threads, a producer and a consumer, passing a million entries through a small queue with the wakeup
 * rule lbd uses (wake only after pushing into an empty queue, look again after draining): every entry
 * arrives once, in order, with its contents, and none is stranded (a stranded entry hangs the consumer,
 * which the test sees as a timeout). */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "lbd/spsc.h"

#define QSIZE 8u

struct entry {
	uint32_t seq;
	uint32_t check;         /* a function of seq: a torn or early read shows here */
};

static void test_edges(void **state)
{
	struct spsc q;
	struct entry e[QSIZE];
	uint32_t first, i;

	(void)state;
	spsc_init(&q, QSIZE);
	assert_int_equal(spsc_peek(&q, &first), 0);
	assert_true(spsc_drained(&q));
	for (i = 0; i < QSIZE; i++) {
		uint32_t s = spsc_push_slot(&q);
		assert_int_not_equal(s, SPSC_FULL);
		e[s].seq = i;
		spsc_push(&q);
		assert_int_equal(spsc_pushed_into_empty(&q), i == 0);
	}
	assert_int_equal(spsc_push_slot(&q), SPSC_FULL);
	assert_int_equal(spsc_peek(&q, &first), QSIZE);
	assert_int_equal(e[spsc_slot(&q, first + 3)].seq, 3);
	spsc_pop(&q, 3);
	assert_false(spsc_drained(&q));
	assert_int_not_equal(spsc_push_slot(&q), SPSC_FULL);
	assert_int_equal(spsc_peek(&q, &first), QSIZE - 3);
	spsc_pop(&q, QSIZE - 3);
	assert_true(spsc_drained(&q));

	/* Indices that wrap past UINT32_MAX keep working. */
	q.head = q.tail = UINT32_MAX - 2;
	for (i = 0; i < 5; i++) {
		uint32_t s = spsc_push_slot(&q);
		assert_int_not_equal(s, SPSC_FULL);
		e[s].seq = 100 + i;
		spsc_push(&q);
	}
	assert_int_equal(spsc_peek(&q, &first), 5);
	for (i = 0; i < 5; i++)
		assert_int_equal(e[spsc_slot(&q, first + i)].seq, 100 + i);
	spsc_pop(&q, 5);
	assert_true(spsc_drained(&q));
}

#define N_ENTRIES 1000000u

static struct spsc tq;
static struct entry tentries[QSIZE];
static sem_t wake;
static uint32_t full_seen;

static uint32_t check_of(uint32_t seq)
{
	return seq * 2654435761u ^ 0x5bd1e995u;
}

static void *producer(void *arg)
{
	(void)arg;
	for (uint32_t i = 0; i < N_ENTRIES; i++) {
		uint32_t s;
		while ((s = spsc_push_slot(&tq)) == SPSC_FULL)
			full_seen++;    /* lbd drops here; the test waits to check every entry */
		tentries[s].seq = i;
		tentries[s].check = check_of(i);
		spsc_push(&tq);
		if (spsc_pushed_into_empty(&tq))
			sem_post(&wake);
	}
	return NULL;
}

static void test_two_threads(void **state)
{
	pthread_t t;
	uint32_t next = 0, first, n;

	(void)state;
	spsc_init(&tq, QSIZE);
	assert_int_equal(sem_init(&wake, 0, 0), 0);
	assert_int_equal(pthread_create(&t, NULL, producer, NULL), 0);
	while (next < N_ENTRIES) {
		while ((n = spsc_peek(&tq, &first)) > 0) {
			for (uint32_t i = 0; i < n; i++) {
				const struct entry *e = &tentries[spsc_slot(&tq, first + i)];
				assert_int_equal(e->seq, next);
				assert_int_equal(e->check, check_of(next));
				next++;
			}
			spsc_pop(&tq, n);
		}
		if (next == N_ENTRIES || !spsc_drained(&tq))
			continue;
		/* Empty: sleep until the producer wakes us, as lbd's main thread does. */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 10;
		int r;
		while ((r = sem_timedwait(&wake, &until)) < 0 && errno == EINTR)
			;
		assert_int_equal(r, 0);     /* a timeout: an entry was stranded */
	}
	pthread_join(t, NULL);
	assert_int_equal(spsc_peek(&tq, &first), 0);
	sem_destroy(&wake);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_edges),
		cmocka_unit_test(test_two_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
