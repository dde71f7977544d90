/* vrrpd: the failover daemon's start-up and shutdown: options, config and keys, sockets, privileges;
 * then node.c runs the loop's events (heartbeats, lbd, timers, signals, reload). */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "privs.h"
#include "sdnotify.h"
#include "startup.h"
#include "control.pb-c.h"
#include "vrrpd.h"

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

/* STATUS= for systemd: the VRRP state and the node. */
static void vrrpd_status_text(void *ctx, char *buf, size_t len)
{
	const struct vrrpd *v = ctx;

	snprintf(buf, len, "%s%s, node %s", vrrp_state_name(v->fsm.state), v->fsm.stopping ? " (stopping)" : "",
		 v->node);
}

int main(int argc, char **argv)
{
	static struct vrrpd v;
	static struct sdnotify sdn;
	struct startup_args a;
	char err[512] = "";
	struct vrrp_fsm_config fc;
	const char *why;

	startup_args(&a, "vrrpd", 0, argc, argv);
	log_init("vrrpd", a.foreground || a.test, a.debug);
	sdnotify_open(&sdn);
	v.cfg = startup_load(&a, &v.keys, &v.uid, &v.gid);
	if (a.node)
		snprintf(v.node, sizeof(v.node), "%s", a.node);
	if (vrrpd_set_node(&v, v.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	vrrpd_fsm_config(&v, &fc);
	if (vrrp_fsm_config_check(&fc, &why) < 0) {
		fprintf(stderr, "%s: %s\n", a.cfg_path, why);
		return 1;
	}
	if (privs_check_root("vrrpd") < 0)
		return 1;
	snprintf(v.cfg_path, sizeof(v.cfg_path), "%s", a.cfg_path);
	snprintf(v.run_dir, sizeof(v.run_dir), "%s", a.run_dir);
	if (!a.foreground && daemon(0, 0) < 0)
		fatal("daemon: %s", strerror(errno));
	v.loop = ev_default_loop(EVFLAG_AUTO);
	v.start_ms = clock_ms();
	v.hb = auth_session_create(v.keys, AUTH_KIND_HEARTBEAT, v.node, v.have_peer ? v.peer.name : "-");
	if (!v.hb)
		fatal("cannot create the heartbeat session");
	char sock[PATH_MAX + 16];
	snprintf(sock, sizeof(sock), "%s/vrrpd.sock", v.run_dir);
	if (privs_run_dir(v.run_dir) < 0 || advert_open(&v) < 0 || status_open(&v) < 0 ||
	    privs_hand_over(v.run_dir, sock, v.uid, v.gid) < 0)
		fatal("start-up failed");
	vrrpd_realtime(&v);
	/* From here vrrpd needs no capability: its UDP socket is bound, link state is read with an
	 * unprivileged ioctl, lbd's socket belongs to the same user, and notify hooks run as this user
	 * too, so ending an overrunning one needs no CAP_KILL. */
	if (privs_become(v.cfg, v.uid, v.gid, 0) < 0)
		fatal("cannot drop privileges");

	vrrpd_start(&v, &fc);
	sdnotify_ready(&sdn, v.loop, vrrpd_status_text, &v);
	ev_run(v.loop, 0);
	sdnotify_send(&sdn, "STOPPING=1");
	sdnotify_close(&sdn, v.loop);

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
