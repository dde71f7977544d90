/* vrrpd: the failover daemon's start-up and shutdown: options, config and keys, sockets, privileges;
 * then node.c runs the loop's events (heartbeats, lbd, timers, signals, reload). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "privs.h"
#include "control.pb-c.h"
#include "vrrpd.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vrrpd -c FILE [-n NODE] [--run-dir DIR] [-f] [-d]\n"
		"       vrrpd -t -c FILE\n"
		"  -c, --config FILE   cluster config (docs/config.md)\n"
		"  -n, --node NODE     node to run as (default: the node whose address is on this host)\n"
		"      --run-dir DIR   directory of the control sockets (default /run/dsrlb)\n"
		"  -f, --foreground    stay in the foreground, log to stderr\n"
		"  -d, --debug         debug logging\n"
		"  -t, --test          check the config and exit\n");
}

static void vrrpd_realtime(const struct vrrpd *v)
{
	struct sched_param sp = { .sched_priority = 10 };

	if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
		log_warn("mlockall: %s (heartbeats may be delayed under memory pressure)", strerror(errno));
	/* Timers fire on time, not up to 50 us late in a batch with others (a real-time task gets no
	 * slack anyway; this covers realtime = no). 1 ns is the least: 0 would restore the default. */
	if (prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0) < 0)
		log_warn("timer slack: %s", strerror(errno));
	/* RESET_ON_FORK: notify hooks run in the normal class, never ahead of the daemons. */
	if (v->cfg->realtime && sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) < 0)
		log_warn("realtime priority: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "run-dir", required_argument, NULL, 'R' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "test", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct vrrpd v;
	const char *cfg_path = NULL, *run_dir = "/run/dsrlb";
	int fg = 0, debug = 0, test = 0, c;
	char err[512] = "";
	struct vrrp_fsm_config fc;
	const char *why;

	while ((c = getopt_long(argc, argv, "c:n:fdth", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg_path = optarg; break;
		case 'n': snprintf(v.node, sizeof(v.node), "%s", optarg); break;
		case 'R': run_dir = optarg; break;
		case 'f': fg = 1; break;
		case 'd': debug = 1; break;
		case 't': test = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!cfg_path || optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("vrrpd", fg || test, debug);
	v.cfg = cfg_load(cfg_path, err, sizeof(err));
	if (!v.cfg) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	v.keys = auth_keyring_load((const char *const[]){ v.cfg->key_files[0], v.cfg->key_files[1] },
				   v.cfg->n_key_files, err, sizeof(err));
	if (!v.keys) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (err[0])
		log_warn("%s", err);
	if (test) {
		printf("%s: ok\n", cfg_path);
		return 0;
	}
	if (vrrpd_set_node(&v, v.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	vrrpd_fsm_config(&v, &fc);
	if (vrrp_fsm_config_check(&fc, &why) < 0) {
		fprintf(stderr, "%s: %s\n", cfg_path, why);
		return 1;
	}
	snprintf(v.cfg_path, sizeof(v.cfg_path), "%s", cfg_path);
	snprintf(v.run_dir, sizeof(v.run_dir), "%s", run_dir);
	if (!fg && daemon(0, 0) < 0)
		fatal("daemon: %s", strerror(errno));
	v.loop = ev_default_loop(EVFLAG_AUTO);
	v.start_ms = clock_ms();
	v.hb = auth_session_create(v.keys, AUTH_KIND_HEARTBEAT, v.node, v.have_peer ? v.peer.name : "-");
	if (!v.hb)
		fatal("cannot create the heartbeat session");
	if (mkdir(v.run_dir, 0755) < 0 && errno != EEXIST)
		fatal("run dir %s: %s", v.run_dir, strerror(errno));
	if (advert_open(&v) < 0 || status_open(&v) < 0)
		fatal("start-up failed");
	vrrpd_realtime(&v);
	if (privs_keep_only(1ull << CAP_NET_RAW | 1ull << CAP_NET_ADMIN | 1ull << CAP_KILL) < 0)
		log_warn("could not drop capabilities; continuing with full privileges");

	vrrpd_start(&v, &fc);
	ev_run(v.loop, 0);

	/* Leaving: lbd goes standby now (it would also fence itself when we fall silent). */
	if (v.lbd_want_active || v.lbd_release_ms) {
		Dsrlb__LbdRequest q = DSRLB__LBD_REQUEST__INIT;
		uint8_t buf[64], *resp;
		size_t len, rlen;
		char path[PATH_MAX + 16];
		q.cmd = DSRLB__LBD_CMD__LBD_CMD_SET_MODE;
		q.active = 0;
		q.release_ms = v.lbd_release_ms;
		len = dsrlb__lbd_request__pack(&q, buf);
		snprintf(path, sizeof(path), "%s/lbd.sock", v.run_dir);
		if (ipc_call(path, buf, len, &resp, &rlen, 500, err, sizeof(err)) == 0)
			free(resp);
	}
	status_close(&v);
	advert_close(&v);
	lbdlink_close(&v);
	auth_session_destroy(v.hb);
	auth_keyring_destroy(v.keys);
	cfg_free(v.cfg);
	log_info("stopped");
	return 0;
}
