/* Active/standby: only an active lbd answers ARP and ICMP echo for the VIPs and forwards. vrrpd sets
 * the mode with a fence time; if it falls silent that long, lbd goes standby by itself, so a node
 * whose vrrpd died cannot keep the VIPs (DESIGN.md trap 9). Activation sends gratuitous ARP bursts. */
#include "clock.h"
#include "lbd.h"
#include "log.h"

const char *mode_reason_str(enum lbd_reason r)
{
	static const char *s[] = { "startup", "standalone", "vrrpd", "operator", "fenced" };
	return (unsigned)r < sizeof(s) / sizeof(s[0]) ? s[r] : "?";
}

static void mode_fence_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lbd *l = t->data;

	if (!l->fence_deadline_ms)
		return;
	if (clock_ms() >= l->fence_deadline_ms) {
		log_warn("no word from vrrpd for %u ms: going standby (fenced)", l->cfg->fence_ms);
		mode_set(l, 0, LBD_REASON_FENCED, 0, 0);
		return;
	}
	t->repeat = (l->fence_deadline_ms - clock_ms()) / 1000.0 + 0.001;
	ev_timer_again(loop, t);
}

static void mode_garp_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lbd *l = t->data;

	if (l->active)
		arp_send_garp_burst(l);
}

void mode_init(struct lbd *l)
{
	ev_init(&l->fence_timer, mode_fence_cb);
	ev_init(&l->garp_timer, mode_garp_cb);
	ev_init(&l->garp_refresh_timer, mode_garp_cb);
	l->fence_timer.data = l->garp_timer.data = l->garp_refresh_timer.data = l;
}

void mode_set(struct lbd *l, int active, enum lbd_reason why, uint32_t fence_ms, int force_garp)
{
	int was = l->active;

	if (active != was || why != l->reason) {     /* vrrpd's refreshes, every advert, change nothing */
		dp_write_lock(l);
		l->active = active;
		l->reason = why;
		dp_write_unlock(l);
	}
	if (active && fence_ms) {
		l->fence_deadline_ms = clock_ms() + fence_ms;
		l->fence_timer.repeat = fence_ms / 1000.0 + 0.001;
		ev_timer_again(l->loop, &l->fence_timer);
	} else {
		l->fence_deadline_ms = 0;
		ev_timer_stop(l->loop, &l->fence_timer);
	}
	if (active && (!was || force_garp)) {
		arp_send_garp_burst(l);
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
