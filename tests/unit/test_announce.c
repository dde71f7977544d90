/* Unit tests for lbd/announce.c's decision (announce_vip_why): a VIP is announced only while lbd
 * forwards, sync is ready, the node neither drains nor stops, and every service of that VIP has a usable
 * backend or a resolved sorry backend; the reason names what is missing, and one VIP's services never
 * withdraw another VIP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lbd/announce.h"
#include "lbd/lbd.h"

#define VIP_A 0x640200c0u       /* 192.0.2.100 in network order on little-endian hosts; any value */
#define VIP_B 0x650200c0u

static struct lbd l;

static void setup_lbd(void)
{
	memset(&l, 0, sizeof(l));
	l.active = 1;
	l.n_services = 3;
	strcpy(l.services[0].name, "web");
	l.services[0].vip = VIP_A;
	l.services[0].n_usable = 2;
	l.services[0].sorry_slot = LBD_NO_SLOT;
	strcpy(l.services[1].name, "dns");
	l.services[1].vip = VIP_A;
	l.services[1].n_usable = 1;
	l.services[1].sorry_slot = LBD_NO_SLOT;
	strcpy(l.services[2].name, "other");
	l.services[2].vip = VIP_B;
	l.services[2].n_usable = 1;
	l.services[2].sorry_slot = LBD_NO_SLOT;
}

static void test_announces_when_all_is_well(void **state)
{
	char why[ANNOUNCE_WHY_MAX];

	(void)state;
	setup_lbd();
	assert_null(announce_vip_why(&l, VIP_A, 0, 1, why, sizeof(why)));
	assert_null(announce_vip_why(&l, VIP_B, 0, 1, why, sizeof(why)));
}

static void test_reasons_in_order(void **state)
{
	char why[ANNOUNCE_WHY_MAX];

	(void)state;
	setup_lbd();
	assert_string_equal(announce_vip_why(&l, VIP_A, 0, 0, why, sizeof(why)), "waiting for bulk sync");
	assert_string_equal(announce_vip_why(&l, VIP_A, 1, 0, why, sizeof(why)), "draining (lbctl drain-node)");
	l.active = 0;
	assert_string_equal(announce_vip_why(&l, VIP_A, 0, 1, why, sizeof(why)), "not forwarding");
	l.stopping = 1;
	assert_string_equal(announce_vip_why(&l, VIP_A, 1, 0, why, sizeof(why)), "stopping");
}

static void test_one_service_without_backend_withdraws_its_vip_only(void **state)
{
	char why[ANNOUNCE_WHY_MAX];

	(void)state;
	setup_lbd();
	l.services[1].n_usable = 0;
	assert_string_equal(announce_vip_why(&l, VIP_A, 0, 1, why, sizeof(why)), "no usable backend for service dns");
	assert_null(announce_vip_why(&l, VIP_B, 0, 1, why, sizeof(why)));
	/* A sorry backend takes the traffic once its MAC is known (as the forwarding path sends it there). */
	l.services[1].sorry_slot = 7;
	assert_non_null(announce_vip_why(&l, VIP_A, 0, 1, why, sizeof(why)));
	l.slots[7].mac_known = 1;
	assert_null(announce_vip_why(&l, VIP_A, 0, 1, why, sizeof(why)));
}

static void test_long_service_name_fits(void **state)
{
	char why[ANNOUNCE_WHY_MAX];

	(void)state;
	setup_lbd();
	memset(l.services[2].name, 'x', CFG_NAME_MAX - 1);
	l.services[2].name[CFG_NAME_MAX - 1] = 0;
	l.services[2].n_usable = 0;
	assert_non_null(announce_vip_why(&l, VIP_B, 0, 1, why, sizeof(why)));
	assert_int_equal(strlen(why), strlen("no usable backend for service ") + CFG_NAME_MAX - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_announces_when_all_is_well),
		cmocka_unit_test(test_reasons_in_order),
		cmocka_unit_test(test_one_service_without_backend_withdraws_its_vip_only),
		cmocka_unit_test(test_long_service_name_fits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
