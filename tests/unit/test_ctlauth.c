/* Unit tests for common/ctlauth.c: who may change state, who may only read, who may do nothing, and
 * what a refused client is told. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/ctlauth.h"

#define DAEMON_UID 998
#define OPS 64000
#define VIEWERS 64001

static const struct cfg_group ops = { "dsrlb-operators", OPS, 1 };
static const struct cfg_group viewers = { "dsrlb-viewers", VIEWERS, 1 };
static const struct cfg_group unset = { "", 0, 0 };

static enum ipc_access decide(const struct cfg_group *op, const struct cfg_group *st, uid_t uid, gid_t gid,
			      const gid_t *groups, size_t n)
{
	struct ipc_cred c = { uid, gid, 1234, groups, n };

	return ctlauth_decide(op, st, DAEMON_UID, &c);
}

static void test_decide(void **state)
{
	static const gid_t none[1];
	static const gid_t supp_ops[] = { 100, 27, OPS };
	static const gid_t supp_viewers[] = { VIEWERS, 100 };
	static const gid_t supp_both[] = { VIEWERS, OPS };

	/* Root and the daemons' user, whatever their groups and whatever is configured. */
	assert_int_equal(decide(&ops, &viewers, 0, 0, none, 0), IPC_ACCESS_CHANGE);
	assert_int_equal(decide(&unset, &unset, 0, 5000, none, 0), IPC_ACCESS_CHANGE);
	assert_int_equal(decide(&ops, &viewers, DAEMON_UID, DAEMON_UID, none, 0), IPC_ACCESS_CHANGE);
	assert_int_equal(decide(&unset, &unset, DAEMON_UID, 5000, none, 0), IPC_ACCESS_CHANGE);
	/* operator_group by primary group and by a supplementary one. */
	assert_int_equal(decide(&ops, &viewers, 1000, OPS, none, 0), IPC_ACCESS_CHANGE);
	assert_int_equal(decide(&ops, &viewers, 1000, 1000, supp_ops, 3), IPC_ACCESS_CHANGE);
	assert_int_equal(decide(&ops, &viewers, 1000, 1000, supp_both, 2), IPC_ACCESS_CHANGE);
	/* status_group only: read. */
	assert_int_equal(decide(&ops, &viewers, 1000, VIEWERS, none, 0), IPC_ACCESS_READ);
	assert_int_equal(decide(&ops, &viewers, 1000, 1000, supp_viewers, 2), IPC_ACCESS_READ);
	assert_int_equal(decide(&unset, &viewers, 1000, 1000, supp_viewers, 2), IPC_ACCESS_READ);
	/* A stranger: nothing; nor does a group count that is not configured (gid 0 of an unset one). */
	assert_int_equal(decide(&ops, &viewers, 1000, 1000, supp_ops, 2), IPC_ACCESS_NONE);
	assert_int_equal(decide(&ops, &viewers, 65534, 65534, none, 0), IPC_ACCESS_NONE);
	assert_int_equal(decide(&unset, &unset, 1000, 0, none, 0), IPC_ACCESS_NONE);
	assert_int_equal(decide(&unset, &unset, 1000, OPS, supp_both, 2), IPC_ACCESS_NONE);
	/* A supplementary group past the ones given does not count. */
	assert_int_equal(decide(&ops, &unset, 1000, 1000, supp_ops, 2), IPC_ACCESS_NONE);
}

static void test_check_messages(void **state)
{
	struct cfg cfg;
	struct ipc_peer p = { 1000, 1000, 1234, IPC_ACCESS_NONE };
	char err[300];

	memset(&cfg, 0, sizeof(cfg));
	cfg.operator_group = ops;
	cfg.status_group = viewers;
	assert_int_equal(ctlauth_check(&cfg, &p, IPC_ACCESS_CHANGE, "drain a backend", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "permission denied: uid 1000 is not in group dsrlb-operators (operator_group)"));
	assert_non_null(strstr(err, "drain a backend"));
	assert_int_equal(ctlauth_check(&cfg, &p, IPC_ACCESS_READ, "read lbd's status", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "group dsrlb-viewers (status_group) or group dsrlb-operators (operator_group)"));

	p.access = IPC_ACCESS_READ;
	err[0] = 0;
	assert_int_equal(ctlauth_check(&cfg, &p, IPC_ACCESS_READ, "read lbd's status", err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(ctlauth_check(&cfg, &p, IPC_ACCESS_CHANGE, "reload lbd", err, sizeof(err)), -1);
	p.access = IPC_ACCESS_CHANGE;
	assert_int_equal(ctlauth_check(&cfg, &p, IPC_ACCESS_CHANGE, "reload lbd", err, sizeof(err)), 0);

	/* Nothing configured: the message says which key would allow it. */
	memset(&cfg, 0, sizeof(cfg));
	p.access = IPC_ACCESS_NONE;
	assert_int_equal(ctlauth_check(&cfg, &p, IPC_ACCESS_CHANGE, "set lbd's mode", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "operator_group"));
	assert_int_equal(ctlauth_check(&cfg, &p, IPC_ACCESS_READ, "list flows", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "status_group"));
	/* A tiny buffer is not overrun. */
	char tiny[8];
	assert_int_equal(ctlauth_check(&cfg, &p, IPC_ACCESS_READ, "list flows", tiny, sizeof(tiny)), -1);
	assert_int_equal(strlen(tiny), 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_check_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
