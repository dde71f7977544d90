/* mode = ecmp: the decision to announce each VIP to the local routing daemon, the routes that carry it
 * (added and deleted by the privileged helper, kdrop.c), the device they point at, and the graceful
 * removal of a node (SIGTERM, lbctl drain-node). docs/deploy-ecmp.md says why a route through a TUN
 * device lbd holds open: the kernel deletes the device and its routes when lbd dies, however it dies.
 * IPv4 and IPv6 VIPs are judged alike, each on its own services; the route is VIP/32 or VIP/128.
 *
 *   per VIP:  withdrawn --every service usable, sync ready, not draining, not stopping--> announced
 *             announced --any of those lost--> withdrawn          (judged after every loop event)
 *   node:     forwarding --SIGTERM--> stopping: all withdrawn, still forwarding
 *             stopping --no VIP frame for drain_quiet, or stop_timeout--> leaves
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "announce.h"
#include "clock.h"
#include "kdrop.h"
#include "lbd.h"
#include "log.h"

const char *announce_vip_why(const struct lbd *l, const struct ipaddr *vip, int draining, int sync_ok, char *why,
			     size_t len)
{
	if (l->stopping) {
		snprintf(why, len, "stopping");
		return why;
	}
	if (draining) {
		snprintf(why, len, "draining (lbctl drain-node)");
		return why;
	}
	if (!l->active) {
		snprintf(why, len, "not forwarding");
		return why;
	}
	if (!sync_ok) {
		snprintf(why, len, "waiting for bulk sync");
		return why;
	}
	for (size_t i = 0; i < l->n_services; i++) {
		const struct lbd_service *s = &l->services[i];
		if (!ipaddr_eq(&s->vip, vip) || s->n_usable)
			continue;
		/* The sorry backend takes the traffic when it is resolved, as fwd_pick sends it there. */
		if (s->sorry_slot != LBD_NO_SLOT && l->slots[s->sorry_slot].mac_known)
			continue;
		snprintf(why, len, "no usable backend for service %s", s->name);
		return why;
	}
	return NULL;
}

static int announce_tun_open(const char *name)
{
	struct ifreq ifr;
	int fd, s;

	/* TUNSETIFF would attach to an existing device, and a persistent one would outlive us. */
	if (if_nametoindex(name)) {
		log_err("%s: announce_device %s exists already: another lbd runs, or it is left over "
			"(ip link del %s)", __func__, name, name);
		return -1;
	}
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		log_err("%s: /dev/net/tun: %s", __func__, strerror(errno));
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		log_err("%s: creating %s: %s", __func__, name, strerror(errno));
		close(fd);
		return -1;
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0 || (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr)) < 0) {
		log_err("%s: bringing %s up: %s", __func__, name, strerror(errno));
		if (s >= 0)
			close(s);
		close(fd);
		return -1;
	}
	close(s);
	return fd;
}

static void announce_wake_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	/* Nothing to do: waking the loop runs the judge (ev_prepare) again. */
}

static void announce_judge_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	announce_judge(w->data);
}

static struct announce_vip *announce_entry(struct announce *a, const struct ipaddr *vip)
{
	for (size_t i = 0; i < a->n_vips; i++)
		if (ipaddr_eq(&a->vips[i].vip, vip))
			return &a->vips[i];
	if (a->n_vips == sizeof(a->vips) / sizeof(a->vips[0]))
		return NULL;
	memset(&a->vips[a->n_vips], 0, sizeof(a->vips[0]));
	a->vips[a->n_vips].vip = *vip;
	return &a->vips[a->n_vips++];
}

/* Makes the route of v match `want`; 0, or -1 when the helper failed (tried again ANNOUNCE_RETRY_MS
 * later, when the retry timer wakes the loop). */
static int announce_apply(struct announce *a, struct announce_vip *v, int want, uint64_t now)
{
	char addr[IPADDR_STRLEN];

	if (v->installed == want)
		return 0;
	if (v->retry_at_ms && now < v->retry_at_ms)
		return -1;
	if (kdrop_route(a->l->kdrop, &v->vip, want) < 0) {
		log_rl(LOG_LVL_ERR, "could not %s %s (retrying every %u ms)", want ? "announce" : "withdraw",
		       ipaddr_str(&v->vip, addr), ANNOUNCE_RETRY_MS);
		v->retry_at_ms = now + ANNOUNCE_RETRY_MS;
		if (!ev_is_active(&a->retry)) {
			ev_timer_set(&a->retry, ANNOUNCE_RETRY_MS / 1000.0, 0.);
			ev_timer_start(a->l->loop, &a->retry);
		}
		return -1;
	}
	v->installed = (uint8_t)want;
	v->retry_at_ms = 0;
	return 0;
}

void announce_judge(struct announce *a)
{
	struct lbd *l;
	uint64_t now = clock_ms();
	int sync_ok, all = 1;
	const char *first_why = NULL;
	char why[ANNOUNCE_WHY_MAX];

	if (!a)
		return;
	l = a->l;
	/* Only a joining node waits for the bulk sync: one that has had it holds every flow, and a peer that
	 * connects later (restarted, or new) is the one that must catch up. Withdrawing here would take
	 * every node out of the router at once whenever one of them restarts. */
	if (!a->synced && sync_ready(l->sync))
		a->synced = 1;
	sync_ok = a->synced;
	for (size_t i = 0; i < a->n_vips; i++)
		a->vips[i].seen = 0;
	for (size_t i = 0; i < l->n_vips; i++) {
		struct announce_vip *v = announce_entry(a, &l->vips[i]);
		const char *no = announce_vip_why(l, &l->vips[i], a->draining, sync_ok, why, sizeof(why));
		char addr[IPADDR_STRLEN];

		if (!v)
			continue;
		v->seen = 1;
		ipaddr_str(&v->vip, addr);
		if (v->want != !no || strcmp(v->why, no ? no : "announced") != 0) {
			if (no)
				log_info("VIP %s withdrawn: %s", addr, no);
			else
				log_info("VIP %s/%d announced (table %u, dev %s)", addr, ipaddr_is_v4(&v->vip) ? 32 : 128,
					 l->cfg->announce_table, l->cfg->announce_device);
		}
		v->want = !no;
		snprintf(v->why, sizeof(v->why), "%s", no ? no : "announced");
		announce_apply(a, v, v->want, now);
		if (!v->installed) {
			all = 0;
			if (!first_why)
				first_why = no ? v->why : "announcing (the helper failed; see the log)";
		}
	}
	/* VIPs a reload removed: their routes go. */
	for (size_t i = 0; i < a->n_vips;) {
		if (a->vips[i].seen || announce_apply(a, &a->vips[i], 0, now) < 0) {
			i++;
			continue;
		}
		a->vips[i] = a->vips[--a->n_vips];
	}
	l->announced = all && l->n_vips > 0;
	snprintf(l->announce_why, sizeof(l->announce_why), "%s", l->announced ? "announced" : first_why ? first_why
		 : "no VIP");
}

/* A new reason to act (drain, stop): a route that failed is tried again at once. */
static void announce_retry_now(struct announce *a)
{
	for (size_t i = 0; i < a->n_vips; i++)
		a->vips[i].retry_at_ms = 0;
}

struct announce *announce_open(struct lbd *l)
{
	struct announce *a = calloc(1, sizeof(*a));

	if (!a) {
		log_err("%s: out of memory", __func__);
		return NULL;
	}
	a->l = l;
	a->tun_fd = announce_tun_open(l->cfg->announce_device);
	if (a->tun_fd < 0) {
		free(a);
		return NULL;
	}
	ev_prepare_init(&a->judge, announce_judge_cb);
	ev_init(&a->retry, announce_wake_cb);
	a->judge.data = a->retry.data = a;
	snprintf(l->announce_why, sizeof(l->announce_why), "starting");
	return a;
}

void announce_start(struct announce *a)
{
	if (!a)
		return;
	ev_prepare_start(a->l->loop, &a->judge);
	announce_judge(a);
}

void announce_close(struct announce *a)
{
	if (!a)
		return;
	ev_prepare_stop(a->l->loop, &a->judge);
	ev_timer_stop(a->l->loop, &a->retry);
	ev_timer_stop(a->l->loop, &a->quiet);
	ev_timer_stop(a->l->loop, &a->stop_timer);
	/* Deleting the device would take its routes along; deleting them first says so in the log. */
	announce_retry_now(a);
	for (size_t i = 0; i < a->n_vips; i++)
		announce_apply(a, &a->vips[i], 0, clock_ms());
	close(a->tun_fd);
	a->l->announced = 0;
	free(a);
}

void announce_drain(struct announce *a, int on)
{
	if (!a || a->draining == on)
		return;
	a->draining = on;
	log_info("%s", on ? "draining the node (lbctl drain-node): every VIP withdrawn, still forwarding"
		 : "node back in service (lbctl undrain-node)");
	announce_retry_now(a);
	announce_judge(a);
}

static uint64_t announce_vip_frames(struct lbd *l)
{
	struct lbd_counters c;

	worker_counters(l, &c);
	return c.vip_frames;
}

static void announce_quiet_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct announce *a = t->data;
	struct lbd *l = a->l;
	uint64_t now = clock_ms(), frames = announce_vip_frames(l);

	if (frames != a->last_vip_frames) {
		a->last_vip_frames = frames;
		a->quiet_since_ms = now;
		return;
	}
	if (now - a->quiet_since_ms < l->cfg->drain_quiet_ms)
		return;
	log_info("stopping: no VIP frame for %u ms, the routers have moved; leaving after %llu ms of forwarding "
		 "since the withdrawal", l->cfg->drain_quiet_ms, (unsigned long long)(now - a->stop_ms));
	ev_break(loop, EVBREAK_ALL);
}

static void announce_stop_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct announce *a = t->data;

	log_warn("stopping: VIP frames still arrive after stop_timeout (%u ms); leaving", a->l->cfg->stop_timeout_ms);
	ev_break(loop, EVBREAK_ALL);
}

void announce_stop(struct announce *a, int signum)
{
	struct lbd *l = a->l;
	uint32_t q = l->cfg->drain_quiet_ms / 10;

	if (l->stopping) {
		log_warn("signal %d again: leaving now", signum);
		ev_break(l->loop, EVBREAK_ALL);
		return;
	}
	l->stopping = 1;
	announce_retry_now(a);
	announce_judge(a);
	if (!l->cfg->stop_timeout_ms) {
		log_info("signal %d: routes withdrawn; stopping (stop_timeout = 0)", signum);
		ev_break(l->loop, EVBREAK_ALL);
		return;
	}
	a->stop_ms = a->quiet_since_ms = clock_ms();
	a->last_vip_frames = announce_vip_frames(l);
	/* Look often enough to see the quiet end within a tenth of drain_quiet, or 50 ms. */
	q = q < 5 ? 5 : q > 50 ? 50 : q;
	ev_init(&a->quiet, announce_quiet_cb);
	ev_init(&a->stop_timer, announce_stop_timeout_cb);
	a->quiet.data = a->stop_timer.data = a;
	a->quiet.repeat = q / 1000.0;
	ev_timer_again(l->loop, &a->quiet);
	ev_timer_set(&a->stop_timer, l->cfg->stop_timeout_ms / 1000.0, 0.);
	ev_timer_start(l->loop, &a->stop_timer);
	log_info("signal %d: every route withdrawn; forwarding until no VIP frame came for %u ms (at most %u ms)",
		 signum, l->cfg->drain_quiet_ms, l->cfg->stop_timeout_ms);
}
