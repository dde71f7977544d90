/* Unit tests for common/log.c's rate limiter: a burst per second at one call site, and several threads
 * at one site at once (as lbd's workers are): never more than the burst passes in a window, and every
 * call is either passed or counted as suppressed (run under ASan+UBSan too). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "log.h"

static void test_burst(void **state)
{
	struct log_rl rl = { .window_start_ms = clock_ms() };
	int passed = 0;

	(void)state;
	for (int i = 0; i < 100; i++)
		passed += log_rl_allow(&rl, 5, LOG_LVL_DEBUG);
	/* Unless the clock crossed into a second window meanwhile, exactly the burst passed. */
	if (clock_ms() - rl.window_start_ms < 900) {
		assert_int_equal(passed, 5);
		assert_int_equal(rl.suppressed, 95);
	}
	assert_true(log_enabled(LOG_LVL_ERR));
	assert_false(log_enabled(LOG_LVL_DEBUG));
}

#define THREADS 4
#define CALLS 200000

static struct log_rl shared;
static uint64_t passed_by[THREADS];

static void *hammer(void *arg)
{
	uint64_t *passed = arg;

	for (int i = 0; i < CALLS; i++)
		*passed += (uint64_t)log_rl_allow(&shared, 5, LOG_LVL_DEBUG);
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t t[THREADS];
	uint64_t start = clock_ms(), passed = 0;

	(void)state;
	shared.window_start_ms = start;
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &passed_by[i]), 0);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		passed += passed_by[i];
	}
	/* At most the burst per window (plus one straggler per thread when a window moves on). */
	uint64_t windows = (clock_ms() - start) / 1000 + 1;
	assert_true(passed >= 5);
	assert_true(passed <= windows * (5 + THREADS));
	if (windows == 1)
		assert_int_equal(passed + shared.suppressed, (uint64_t)THREADS * CALLS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst),
		cmocka_unit_test(test_threads),
	};
	log_init("test_log", 1, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
