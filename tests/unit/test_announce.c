/* Unit tests for lbd/announce.c's decision (announce_vip_why): a VIP is announced only while lbd
 * forwards, sync is ready, the node neither drains nor stops, and every service of that VIP has a usable
 * backend or a resolved sorry backend; the reason names what is missing, and one VIP's services never
 * withdraw another VIP, of either family (an IPv6 VIP whose last word is an IPv4 VIP's address is
 * another VIP). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/ipaddr.h"
#include "lbd/announce.h"
#include "lbd/lbd.h"

static struct lbd l;
static struct ipaddr vip_a, vip_b, vip_6, vip_6b;
#define VIP_A (&vip_a)
#define VIP_B (&vip_b)
#define VIP_6 (&vip_6)          /* IPv6 */
#define VIP_6B (&vip_6b)        /* IPv6, the same last word as VIP_A */

static void set_service(size_t i, const char *name, const struct ipaddr *vip, unsigned n_usable)
{
	snprintf(l.services[i].name, sizeof(l.services[i].name), "%s", name);
	l.services[i].vip = *vip;
	l.services[i].n_usable = n_usable;
	l.services[i].sorry_slot = LBD_NO_SLOT;
}

static void setup_lbd(void)
{
	ipaddr_parse("192.0.2.100", &vip_a);
	ipaddr_parse("192.0.2.101", &vip_b);
	ipaddr_parse("2001:db8::100", &vip_6);
	ipaddr_parse("2001:db8::c000:264", &vip_6b);
	memset(&l, 0, sizeof(l));
	l.active = 1;
	l.n_services = 5;
	set_service(0, "web", VIP_A, 2);
	set_service(1, "dns", VIP_A, 1);
	set_service(2, "other", VIP_B, 1);
	set_service(3, "web6", VIP_6, 1);
	set_service(4, "dns6", VIP_6B, 3);
}

static void test_announces_when_all_is_well(void **state)
{
	char why[ANNOUNCE_WHY_MAX];

	(void)state;
	setup_lbd();
	assert_null(announce_vip_why(&l, VIP_A, 0, 1, why, sizeof(why)));
	assert_null(announce_vip_why(&l, VIP_B, 0, 1, why, sizeof(why)));
	assert_null(announce_vip_why(&l, VIP_6, 0, 1, why, sizeof(why)));
	assert_null(announce_vip_why(&l, VIP_6B, 0, 1, why, sizeof(why)));
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
	assert_string_equal(announce_vip_why(&l, VIP_6, 1, 0, why, sizeof(why)), "stopping");
}

/* Each family's services withdraw their own VIP only, also where an IPv6 VIP ends in an IPv4 VIP's bytes. */
static void test_families_apart(void **state)
{
	char why[ANNOUNCE_WHY_MAX];

	(void)state;
	setup_lbd();
	assert_true(ipaddr_v4(VIP_6B) == ipaddr_v4(VIP_A));
	l.services[3].n_usable = 0;
	assert_string_equal(announce_vip_why(&l, VIP_6, 0, 1, why, sizeof(why)), "no usable backend for service web6");
	assert_null(announce_vip_why(&l, VIP_6B, 0, 1, why, sizeof(why)));
	assert_null(announce_vip_why(&l, VIP_A, 0, 1, why, sizeof(why)));
	l.services[3].n_usable = 1;
	l.services[4].n_usable = 0;
	assert_string_equal(announce_vip_why(&l, VIP_6B, 0, 1, why, sizeof(why)), "no usable backend for service dns6");
	assert_null(announce_vip_why(&l, VIP_A, 0, 1, why, sizeof(why)));
	l.services[4].n_usable = 1;
	l.services[0].n_usable = 0;
	assert_string_equal(announce_vip_why(&l, VIP_A, 0, 1, why, sizeof(why)), "no usable backend for service web");
	assert_null(announce_vip_why(&l, VIP_6B, 0, 1, why, sizeof(why)));
	assert_null(announce_vip_why(&l, VIP_6, 0, 1, why, sizeof(why)));
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
		cmocka_unit_test(test_families_apart),
		cmocka_unit_test(test_one_service_without_backend_withdraws_its_vip_only),
		cmocka_unit_test(test_long_service_name_fits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
