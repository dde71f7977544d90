/* Unit tests for lbd/dp.c's ownership of a flow's backend: dp_flow_insert, dp_flow_assign,
 * dp_flow_delete and dp_flow_gone keep each slot's flow count equal to the flows that name it, through
 * a random run of inserts, moves, deletions and expiries checked against a recount of the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "lbd/lbd.h"

#define SLOTS 8

static void recount(struct dp_table *t)
{
	int64_t n[SLOTS] = { 0 };
	uint32_t cursor = 0;
	struct flow *f;

	while ((f = flow_next(t->flows, &cursor)))
		n[f->backend]++;
	for (unsigned s = 0; s < SLOTS; s++)
		assert_int_equal(t->slot_flows[s], n[s]);
}

static void test_counts_follow_flows(void **state)
{
	struct dp_table t;
	struct flow_key k;
	uint64_t rng = 12345;

	(void)state;
	assert_int_equal(dp_table_init(&t, flow_create(256, 0)), 0);
	for (int i = 0; i < 20000; i++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t r = (uint32_t)(rng >> 33);
		struct flow *f;

		memset(&k, 0, sizeof(k));
		k.saddr = ipaddr_from_v4(r % 300);
		k.daddr = ipaddr_from_v4(0);
		k.proto = 6;
		f = flow_lookup(t.flows, &k);
		switch ((r >> 12) % 4) {
		case 0:
			if (!f)
				dp_flow_insert(&t, &k, (uint16_t)((r >> 16) % SLOTS), 0, 0);
			break;
		case 1:
			if (f)
				dp_flow_assign(&t, f, (uint16_t)((r >> 16) % SLOTS));
			break;
		case 2:
			if (f)
				dp_flow_delete(&t, f);
			break;
		default:
			if (f) {        /* as flow_expire does: the callback, then the deletion */
				dp_flow_gone(&t, f);
				flow_delete(t.flows, f);
			}
			break;
		}
		if (i % 1000 == 0)
			recount(&t);
	}
	recount(&t);
	/* A full table refuses the flow and counts nothing. */
	for (uint32_t i = 0; flow_count(t.flows) < flow_max(t.flows); i++) {
		k.saddr = ipaddr_from_v4(100000 + i);
		dp_flow_insert(&t, &k, 1, 0, 0);
	}
	k.saddr = ipaddr_from_v4(999999);
	assert_null(dp_flow_insert(&t, &k, 1, 0, 0));
	recount(&t);
	flow_destroy(t.flows);
	dp_table_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_follow_flows),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
