/* Unit tests for the pure rules of connection-state sync (lbd/sync.c): the output budget per peer, when
 * a node counts as synced (sync_ready) and the one state word of a mesh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lbd/sync_peer.h"

/* A pair keeps the 8 MiB it always had; a mesh shares 16 MiB, never below 1 MiB a peer. */
static void test_out_cap(void **state)
{
	assert_int_equal(sync_out_cap(1), 8u << 20);
	assert_int_equal(sync_out_cap(2), 8u << 20);
	assert_int_equal(sync_out_cap(4), 4u << 20);
	assert_int_equal(sync_out_cap(15), (16u << 20) / 15);
	assert_true(sync_out_cap(15) * 15 <= 16u << 20);
	assert_int_equal(sync_out_cap(64), 1u << 20);
	assert_int_equal(sync_out_cap(0), 8u << 20);
}

/* A pair: ready exactly when the one bulk is done, or after the timeout (what vrrpd's preemption
 * has always waited for). */
static void test_ready_pair(void **state)
{
	enum sync_bulk b[1];
	int est[1] = { 1 };

	for (int e = 0; e < 2; e++) {
		est[0] = e;
		b[0] = BULK_NONE;
		assert_false(sync_ready_rule(b, est, 1, 0));
		b[0] = BULK_REQUESTED;
		assert_false(sync_ready_rule(b, est, 1, 0));
		b[0] = BULK_RECEIVING;
		assert_false(sync_ready_rule(b, est, 1, 0));
		assert_true(sync_ready_rule(b, est, 1, 1));
		b[0] = BULK_DONE;
		assert_true(sync_ready_rule(b, est, 1, 0));
	}
	assert_true(sync_ready_rule(NULL, NULL, 0, 0));
}

/* A mesh: one done transfer is enough while the other peers are away, but a peer that is connected
 * and still sending its table holds readiness back. */
static void test_ready_mesh(void **state)
{
	enum sync_bulk b[3] = { BULK_DONE, BULK_NONE, BULK_REQUESTED };
	int est[3] = { 1, 0, 0 };

	assert_true(sync_ready_rule(b, est, 3, 0));     /* the others are not connected */
	est[2] = 1;
	assert_false(sync_ready_rule(b, est, 3, 0));    /* lb3 is connected, its bulk under way */
	b[2] = BULK_RECEIVING;
	assert_false(sync_ready_rule(b, est, 3, 0));
	assert_true(sync_ready_rule(b, est, 3, 1));     /* sync_timeout passed */
	b[2] = BULK_DONE;
	assert_true(sync_ready_rule(b, est, 3, 0));
	b[0] = b[2] = BULK_NONE;
	assert_false(sync_ready_rule(b, est, 3, 0));    /* nobody has sent us anything yet */
}

static void test_state_aggregate(void **state)
{
	const char *one[] = { "handshake" };
	const char *all[] = { "established", "established", "established" };
	const char *some[] = { "established", "connecting", "handshake" };
	const char *none[] = { "connecting", "handshake" };
	const char *down[] = { "connecting", "connecting" };

	assert_string_equal(sync_state_aggregate(one, 1), "handshake");
	assert_string_equal(sync_state_aggregate(all, 3), "established");
	assert_string_equal(sync_state_aggregate(some, 3), "partial");
	assert_string_equal(sync_state_aggregate(none, 2), "handshake");
	assert_string_equal(sync_state_aggregate(down, 2), "connecting");
	assert_string_equal(sync_state_aggregate(all, 0), "disabled");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out_cap),
		cmocka_unit_test(test_ready_pair),
		cmocka_unit_test(test_ready_mesh),
		cmocka_unit_test(test_state_aggregate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
