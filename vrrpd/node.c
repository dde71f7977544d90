/* The node: the glue between the election state machine (fsm.c) and the world. It owns every event
 * of vrrpd's loop (heartbeats arriving, lbd's answers, the timers, signals) and applies what the state
 * machine decides (vrrpd_actions) through advert.c, lbdlink.c and notify.c, which never call back up:
 * calls go one way, main -> node -> {advert, lbdlink, notify, fsm}, and status -> node for a reload. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "startup.h"
#include "vrrpd.h"

void vrrpd_fsm_config(const struct vrrpd *v, struct vrrp_fsm_config *fc)
{
	memset(fc, 0, sizeof(*fc));
	fc->priority = v->self.priority;
	fc->addr = v->self.addr;
	fc->advert_ms = v->cfg->advert_interval_ms;
	fc->preempt = v->cfg->preempt;
	fc->preempt_delay_ms = v->cfg->preempt_delay_ms;
	fc->stop_timeout_ms = v->cfg->stop_timeout_ms;
}

static void vrrpd_fsm_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vrrpd *v = w->data;

	vrrpd_actions(v, vrrp_fsm_timer(&v->fsm, clock_ms()));
}

/* Arms the one timer of the state machine at its next deadline. */
void vrrpd_rearm(struct vrrpd *v)
{
	uint64_t d = vrrp_fsm_deadline(&v->fsm), now = clock_ms();

	ev_timer_stop(v->loop, &v->fsm_timer);
	if (d == VRRP_NEVER)
		return;
	ev_now_update(v->loop);
	ev_timer_set(&v->fsm_timer, d > now ? (d - now) / 1000.0 : 0., 0.);
	ev_timer_start(v->loop, &v->fsm_timer);
}

static void vrrpd_exit_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

void vrrpd_actions(struct vrrpd *v, unsigned act)
{
	char buf[128];

	if (act) {
		log_debug("actions %s in %s", vrrp_actions_str(act, buf, sizeof(buf)),
			  vrrp_state_name(vrrp_fsm_state(&v->fsm)));
	}
	if (act & VRRP_ACT_SEND_ADVERT)
		advert_send(v);
	if (act & VRRP_ACT_BECOME_MASTER) {
		log_info("MASTER: taking the VIPs");
		v->transitions++;
		v->lbd_want_active = 1;
		v->lbd_garp_pending = 1;
		v->lbd_release_ms = 0;
		lbdlink_push(v);
		notify_run(v, v->cfg->notify_master, "MASTER");
	}
	if (act & VRRP_ACT_SEND_GARP) {
		v->lbd_garp_pending = 1;
		lbdlink_push(v);
	}
	if (act & (VRRP_ACT_BECOME_BACKUP | VRRP_ACT_ENTER_FAULT)) {
		int stop = act & VRRP_ACT_STOP_DONE;
		if (v->lbd_want_active)
			v->transitions++;
		/* Yielding to the peer, or handing over on a stop, lbd keeps forwarding a moment longer
		 * (without answering ARP), until the LAN has taken in the new master's gratuitous ARP; both
		 * forwarding at once is harmless in DSR. A fault means lbd or the link cannot: at once. */
		v->lbd_release_ms = (act & VRRP_ACT_ENTER_FAULT) && !v->lbd_stopping ? 0 : cfg_release_ms(v->cfg);
		v->lbd_want_active = 0;
		lbdlink_push(v);
		if (act & VRRP_ACT_ENTER_FAULT) {
			log_warn("FAULT: releasing the VIPs");
			notify_run(v, v->cfg->notify_fault, "FAULT");
		} else if (!stop) {
			log_info("BACKUP");
			/* Tell the peer at once, so its view (lbctl status) does not show two masters. */
			advert_send(v);
			notify_run(v, v->cfg->notify_backup, "BACKUP");
		}
	}
	if (act & VRRP_ACT_STOP_DONE) {
		/* Leave once lbd has been told (its release runs on without us). */
		double grace = v->lbd_release_ms ? cfg_release_ms(v->cfg) / 1000.0 : 0.05;
		log_info("stop: handing over done, leaving in %.0f ms", grace * 1000);
		ev_timer_init(&v->stop_grace, vrrpd_exit_cb, grace, 0.);
		ev_timer_start(v->loop, &v->stop_grace);
	}
	vrrpd_rearm(v);
}

static void vrrpd_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vrrpd *v = w->data;

	/* Heartbeats go out every interval in every state: the peer needs them to trust our epoch, and
	 * to show our state in its status. A master's adverts come from the state machine. */
	if (vrrp_fsm_state(&v->fsm) != VRRP_MASTER)
		advert_send(v);
	if (!v->stopping)
		vrrpd_actions(v, lbdlink_judge(v));
	lbdlink_push(v);
}

static void vrrpd_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct vrrpd *v = w->data;
	char err[300];

	if (w->signum == SIGHUP) {
		vrrpd_reload(v, err, sizeof(err));
		return;
	}
	if (v->stopping) {
		log_warn("second signal: leaving now");
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	log_info("signal %d: graceful stop", w->signum);
	v->stopping = 1;
	vrrpd_actions(v, vrrp_fsm_shutdown(&v->fsm, clock_ms()));
}

int vrrpd_set_node(struct vrrpd *v, struct cfg *cfg, char *err, size_t errlen)
{
	const struct cfg_node *self = cfg_find_node(cfg, v->node[0] ? v->node : NULL, err, errlen);
	const struct cfg_node *peer;

	if (!self)
		return -1;
	if (cfg->mode != CFG_MODE_PAIR) {
		snprintf(err, errlen, "%s: mode = ecmp: vrrpd serves mode = pair only; in ecmp mode lbd runs "
			 "alone and the routing daemon announces the VIP (docs/deploy-ecmp.md)", cfg->path);
		return -1;
	}
	v->self = *self;
	peer = cfg_peer(cfg, self);
	v->have_peer = peer != NULL;
	if (peer)
		v->peer = *peer;
	snprintf(v->node, sizeof(v->node), "%s", self->name);
	return 0;
}

int vrrpd_reload(struct vrrpd *v, char *err, size_t errlen)
{
	struct cfg *cfg = cfg_load(v->cfg_path, err, errlen);
	struct vrrpd tmp;
	struct auth_keyring *keys;
	struct vrrp_fsm_config fc;
	const char *why;

	if (!cfg)
		goto fail;
	tmp = *v;
	/* The socket was bound to our address and joined the multicast group at start; the peer's address
	 * is lbd's sync peer too, which lbd takes only at start. */
	if (vrrpd_set_node(&tmp, cfg, err, errlen) < 0 || strcmp(tmp.node, v->node) != 0 ||
	    tmp.have_peer != v->have_peer ||
	    (tmp.have_peer && (strcmp(tmp.peer.name, v->peer.name) != 0 || !ipaddr_eq(&tmp.peer.addr, &v->peer.addr))) ||
	    cfg->heartbeat_port != v->cfg->heartbeat_port || !ipaddr_eq(&tmp.self.addr, &v->self.addr) ||
	    cfg->multicast.s_addr != v->cfg->multicast.s_addr || strcmp(cfg->user, v->cfg->user) != 0) {
		if (!err[0])
			snprintf(err, errlen, "%s: node names, addresses, heartbeat_port, multicast and user change "
				 "only on restart", v->cfg_path);
		cfg_free(cfg);
		goto fail;
	}
	keys = startup_keys(cfg, v->gid, err, errlen);
	if (!keys) {
		cfg_free(cfg);
		goto fail;
	}
	tmp.cfg = cfg;
	vrrpd_fsm_config(&tmp, &fc);
	if (vrrp_fsm_config_check(&fc, &why) < 0) {
		snprintf(err, errlen, "%s: %s", v->cfg_path, why);
		auth_keyring_destroy(keys);
		cfg_free(cfg);
		goto fail;
	}
	auth_session_set_keyring(v->hb, keys);
	auth_keyring_destroy(v->keys);
	v->keys = keys;
	cfg_free(v->cfg);
	v->cfg = cfg;
	v->self = tmp.self;
	v->peer = tmp.peer;
	advert_filter(v);
	v->tick.repeat = cfg->advert_interval_ms / 1000.0;
	vrrpd_actions(v, vrrp_fsm_set_config(&v->fsm, &fc, clock_ms()));
	log_info("config reloaded from %s", v->cfg_path);
	err[0] = 0;
	return 0;
fail:
	log_err("reload refused, keeping the running config: %s", err);
	return -1;
}


/* Heartbeats waiting on the socket, each applied before the next is read (one may change the state
 * the next is judged in); bounded so a flood cannot starve the timers. */
static void vrrpd_heartbeat_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vrrpd *v = w->data;
	unsigned act;

	for (int i = 0; i < 64; i++) {
		if (advert_receive(v, &act) < 0)
			return;
		vrrpd_actions(v, act);
	}
}

/* lbd answered (or did not): lbdlink takes the answer in; a change of lbd's stopping is acted on now,
 * not at the next tick, and so is an election that changed while the request was in flight. */
static void vrrpd_lbd_reply_cb(void *arg, const uint8_t *resp, size_t len)
{
	struct vrrpd *v = arg;
	unsigned r = lbdlink_reply(v, resp, len);

	if ((r & LBDLINK_JUDGE) && !v->stopping)
		vrrpd_actions(v, lbdlink_judge(v));
	if (r & LBDLINK_PUSH)
		lbdlink_push(v);
}

void vrrpd_start(struct vrrpd *v, const struct vrrp_fsm_config *fc)
{
	lbdlink_init(v, vrrpd_lbd_reply_cb);
	ev_io_init(&v->sock_io, vrrpd_heartbeat_cb, v->sock, EV_READ);
	v->sock_io.data = v;
	ev_io_start(v->loop, &v->sock_io);
	ev_init(&v->fsm_timer, vrrpd_fsm_timer_cb);
	v->fsm_timer.data = v;
	/* After a stall, a heartbeat waiting on the socket is taken in before an expired master-down timer
	 * is judged (libev would otherwise run the timer first): the timer goes last. */
	ev_set_priority(&v->fsm_timer, EV_MINPRI);
	ev_init(&v->tick, vrrpd_tick_cb);
	v->tick.repeat = v->cfg->advert_interval_ms / 1000.0;
	v->tick.data = v;
	ev_timer_again(v->loop, &v->tick);
	ev_signal_init(&v->sig_int, vrrpd_signal_cb, SIGINT);
	ev_signal_init(&v->sig_term, vrrpd_signal_cb, SIGTERM);
	ev_signal_init(&v->sig_hup, vrrpd_signal_cb, SIGHUP);
	v->sig_int.data = v->sig_term.data = v->sig_hup.data = v;
	ev_signal_start(v->loop, &v->sig_int);
	ev_signal_start(v->loop, &v->sig_term);
	ev_signal_start(v->loop, &v->sig_hup);

	vrrp_fsm_init(&v->fsm, fc);
	/* No preemption until lbd reports its bulk sync done (lbd bounds that by sync_timeout). */
	vrrp_fsm_set_can_preempt(&v->fsm, false);
	log_info("node %s priority %u, peer %s, advert %u ms, master-down %u ms", v->node, v->self.priority,
		 v->have_peer ? v->peer.name : "(none)", v->cfg->advert_interval_ms,
		 vrrp_master_down_ms(v->self.priority, v->cfg->advert_interval_ms));
	vrrpd_actions(v, vrrp_fsm_startup(&v->fsm, clock_ms()));
	vrrpd_actions(v, lbdlink_judge(v));
	lbdlink_push(v);
}
