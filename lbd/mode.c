/* Active/standby and stopping. Only an active lbd forwards; only the owner of the VIPs (active and not
 * releasing them) answers ARP for them and sends gratuitous ARP. vrrpd sets the mode with a fence time:
 * if it falls silent that long, lbd goes standby by itself, so a node whose vrrpd died cannot keep the
 * VIPs (DESIGN.md trap 9).
 *
 *   standby --SET_MODE active--> active (owner) --SET_MODE standby, release_ms--> releasing --timer--> standby
 *                                   |    ^                                  (forwards, no ARP)
 *                                   |    +--------- SET_MODE active -------------+
 *                                   | SIGTERM/SIGINT (standby: leave at once)
 *                                   v
 *   stopping: forwards, still the owner, no fence; answers tell vrrpd "stopping" and vrrpd hands the
 *   VIPs over (vrrp_fsm_release). The peer has them when vrrpd sets standby or a gratuitous ARP for a
 *   VIP arrives from another MAC: releasing for cfg_release_ms, then leave. stop_timeout bounds it all.
 *
 * mode = ecmp has none of this: lbd forwards from start to end, never owns the VIPs (the routers route
 * them to the node's own address, docs/deploy-ecmp.md) and is not fenced; announce.c stops it.
 */
#include "clock.h"
#include "lbd.h"
#include "log.h"

const char *mode_reason_str(enum lbd_reason r)
{
	static const char *s[] = { "startup", "standalone", "vrrpd", "operator", "fenced", "ecmp" };
	return (unsigned)r < sizeof(s) / sizeof(s[0]) ? s[r] : "?";
}

static void mode_fence_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lbd *l = t->data;

	if (!l->fence_deadline_ms || l->stopping)
		return;
	if (clock_ms() >= l->fence_deadline_ms) {
		log_warn("no word from vrrpd for %u ms: going standby (fenced)", l->cfg->fence_ms);
		mode_set(l, 0, LBD_REASON_FENCED, 0, 0, 0);
		return;
	}
	t->repeat = (l->fence_deadline_ms - clock_ms()) / 1000.0 + 0.001;
	ev_timer_again(loop, t);
}

static void mode_garp_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lbd *l = t->data;

	if (l->owner)
		arptx_garp_burst(l);
}

/* Forwarding and ownership change together under the write lock, so a worker sees a consistent pair. */
static void mode_apply(struct lbd *l, int active, int owner, enum lbd_reason why)
{
	if (active == l->active && owner == l->owner && why == l->reason)
		return;         /* vrrpd's refreshes, every advert, change nothing */
	dp_write_lock(l);
	l->active = active;
	l->owner = owner;
	l->reason = why;
	dp_write_unlock(l);
}

static void mode_release_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lbd *l = t->data;

	l->release_until_ms = 0;
	if (l->stopping) {
		log_info("stopping: the VIPs have moved; leaving");
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	mode_apply(l, 0, 0, l->reason);
	log_info("now standby (%s)", mode_reason_str(l->reason));
}

/* Stops answering for the VIPs now and forwards ms longer (the earlier end wins if already releasing). */
static void mode_release(struct lbd *l, enum lbd_reason why, uint32_t ms)
{
	uint64_t until = clock_ms() + ms;

	ev_timer_stop(l->loop, &l->garp_timer);
	ev_timer_stop(l->loop, &l->garp_refresh_timer);
	if (l->release_until_ms && l->release_until_ms <= until)
		return;
	mode_apply(l, 1, 0, why);
	l->release_until_ms = until;
	ev_timer_stop(l->loop, &l->release_timer);
	ev_timer_set(&l->release_timer, ms / 1000.0, 0.);
	ev_timer_start(l->loop, &l->release_timer);
	log_info("releasing the VIPs: no more ARP answers, forwarding %u ms more", ms);
}

static void mode_stop_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lbd *l = t->data;

	log_warn("stopping: no takeover seen within stop_timeout (%u ms); leaving", l->cfg->stop_timeout_ms);
	ev_break(loop, EVBREAK_ALL);
}

void mode_init(struct lbd *l)
{
	ev_init(&l->fence_timer, mode_fence_cb);
	ev_init(&l->garp_timer, mode_garp_cb);
	ev_init(&l->garp_refresh_timer, mode_garp_cb);
	ev_init(&l->release_timer, mode_release_cb);
	ev_init(&l->stop_timer, mode_stop_timeout_cb);
	l->fence_timer.data = l->garp_timer.data = l->garp_refresh_timer.data = l;
	l->release_timer.data = l->stop_timer.data = l;
	/* libev runs pending watchers of one priority last-in first-out, so after a stall of this thread an
	 * expired fence would be judged before the SET_MODE waiting on the socket since: the fence goes last. */
	ev_set_priority(&l->fence_timer, EV_MINPRI);
}

void mode_set(struct lbd *l, int active, enum lbd_reason why, uint32_t fence_ms, int force_garp,
	      uint32_t release_ms)
{
	int was = l->active, was_owner = l->owner;

	if (l->stopping && (!active || l->release_until_ms)) {
		/* vrrpd set us standby: the peer holds the VIPs (or nobody can); nothing takes them back. */
		mode_peer_has_vips(l, "vrrpd released the VIPs");
		return;
	}
	if (!active && was && release_ms) {
		ev_timer_stop(l->loop, &l->fence_timer);
		l->fence_deadline_ms = 0;
		mode_release(l, why, release_ms);
		return;
	}
	if (l->release_until_ms) {
		l->release_until_ms = 0;
		ev_timer_stop(l->loop, &l->release_timer);
	}
	mode_apply(l, active, active, why);
	if (active && fence_ms && !l->stopping) {
		l->fence_deadline_ms = clock_ms() + fence_ms;
		l->fence_timer.repeat = fence_ms / 1000.0 + 0.001;
		ev_timer_again(l->loop, &l->fence_timer);
	} else {
		l->fence_deadline_ms = 0;
		ev_timer_stop(l->loop, &l->fence_timer);
	}
	if (active && (!was_owner || force_garp)) {
		arptx_garp_burst(l);
		ev_timer_stop(l->loop, &l->garp_timer);
		if (l->cfg->garp_repeat_ms) {
			ev_timer_set(&l->garp_timer, l->cfg->garp_repeat_ms / 1000.0, 0.);
			ev_timer_start(l->loop, &l->garp_timer);
		}
		if (l->cfg->garp_refresh_ms) {
			l->garp_refresh_timer.repeat = l->cfg->garp_refresh_ms / 1000.0;
			ev_timer_again(l->loop, &l->garp_refresh_timer);
		}
	}
	if (!active) {
		ev_timer_stop(l->loop, &l->garp_timer);
		ev_timer_stop(l->loop, &l->garp_refresh_timer);
	}
	if (was != active)
		log_info("now %s (%s)", active ? "ACTIVE" : "standby", mode_reason_str(why));
}

void mode_stop(struct lbd *l, int signum)
{
	if (l->stopping) {
		log_warn("signal %d again: leaving now", signum);
		ev_break(l->loop, EVBREAK_ALL);
		return;
	}
	if (!l->active || l->standalone || !l->cfg->stop_timeout_ms) {
		log_info("signal %d: stopping", signum);
		ev_break(l->loop, EVBREAK_ALL);
		return;
	}
	l->stopping = 1;
	/* Keep forwarding until the peer has the VIPs, even if vrrpd is gone: both forwarding is harmless
	 * in DSR, a gap is not. stop_timeout bounds the wait. */
	ev_timer_stop(l->loop, &l->fence_timer);
	l->fence_deadline_ms = 0;
	ev_timer_set(&l->stop_timer, l->cfg->stop_timeout_ms / 1000.0, 0.);
	ev_timer_start(l->loop, &l->stop_timer);
	log_info("signal %d: stopping once the peer has the VIPs (vrrpd hands them over; at most %u ms)", signum,
		 l->cfg->stop_timeout_ms);
	if (l->release_until_ms)
		mode_peer_has_vips(l, "already releasing the VIPs");
}

void mode_peer_has_vips(struct lbd *l, const char *how)
{
	uint32_t ms = cfg_release_ms(l->cfg);

	if (!l->stopping || l->cfg->mode == CFG_MODE_ECMP)
		return;
	if (!l->active) {
		log_info("stopping: %s; leaving", how);
		ev_break(l->loop, EVBREAK_ALL);
		return;
	}
	if (!l->release_until_ms)
		log_info("stopping: %s", how);
	mode_release(l, l->reason, ms);
}

void mode_ecmp(struct lbd *l)
{
	l->fence_deadline_ms = 0;
	ev_timer_stop(l->loop, &l->fence_timer);
	mode_apply(l, 1, 0, LBD_REASON_ECMP);
	log_info("now forwarding (mode = ecmp: no ARP for the VIPs, the routers route them to %s)",
		 l->cfg->interface);
}
