/* mode = ecmp: which VIPs this node announces to the local routing daemon, and the graceful removal.
 * A VIP is announced while lbd forwards, every service of that VIP has a usable backend (or a sorry
 * backend), the bulk sync a joining node needs is done and the node is not draining; the route is
 * `VIP/32 dev announce_device table announce_table proto KDROP_RTPROT` (VIP/128 for an IPv6 VIP), through
 * a TUN device lbd holds open, so the kernel deletes it the moment lbd dies (docs/deploy-ecmp.md, "How
 * dsrlb announces"). */
#ifndef DSR_ANNOUNCE_H
#define DSR_ANNOUNCE_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ipaddr.h"

struct lbd;

#define ANNOUNCE_WHY_MAX 64
#define ANNOUNCE_RETRY_MS 1000          /* a route the helper could not change is tried again this late */

struct announce_vip {
	struct ipaddr vip;              /* either family */
	uint8_t want;                   /* the last decision */
	uint8_t installed;              /* the helper added the route (and has not deleted it since) */
	uint8_t seen;                   /* scratch of announce_judge: still a VIP of the config */
	uint64_t retry_at_ms;           /* the helper failed to change the route: not again before then */
	char why[ANNOUNCE_WHY_MAX];     /* "announced", or why not */
};

struct announce {
	struct lbd *l;
	int tun_fd;                     /* held open, never read: the device, and its routes, die with lbd */
	int draining;                   /* lbctl drain-node */
	int synced;                     /* the bulk sync was done once: a peer (re)joining later changes nothing */
	struct announce_vip vips[CFG_MAX_SERVICES];
	size_t n_vips;
	ev_prepare judge;               /* after every event of the loop: health, sync, reload, control */
	ev_timer retry, quiet, stop_timer;
	/* stopping: the routes are withdrawn, lbd forwards until no VIP frame came for drain_quiet */
	uint64_t stop_ms, quiet_since_ms, last_vip_frames;
};

/* Creates the TUN device announce_device and brings it up; call while root, in mode = ecmp only.
 * NULL (logged) when it cannot, e.g. the device exists already. */
struct announce *announce_open(struct lbd *l);
/* Starts judging (once lbd forwards). */
void announce_start(struct announce *a);
/* Withdraws every route and closes the device; accepts NULL. */
void announce_close(struct announce *a);
/* Decides now and adds or deletes routes to match (the loop does it before it sleeps). */
void announce_judge(struct announce *a);
/* lbctl drain-node / undrain-node: withdraw every VIP and keep forwarding, or announce again. */
void announce_drain(struct announce *a, int on);
/* SIGTERM/SIGINT in mode = ecmp: withdraw every route, forward until the routers have stopped sending
 * (no VIP frame for drain_quiet) or stop_timeout passed, then leave the loop. */
void announce_stop(struct announce *a, int signum);
/* Why VIP must not be announced (into why, returned), or NULL when it may be; pure, for the tests. */
const char *announce_vip_why(const struct lbd *l, const struct ipaddr *vip, int draining, int sync_ok, char *why,
			     size_t len);

#endif
