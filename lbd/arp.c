/* ARP and Neighbour Discovery on the main thread: resolves backend MAC addresses (periodic ARP requests
 * or Neighbour Solicitations, learning from any ARP or NDP frame a backend sends, as the workers report
 * it) and acts on claims for the VIPs: a backend seen claiming a VIP is flagged (it is not set up for
 * DSR); the peer announcing them ends a graceful stop. Workers answer ARP and NS for the VIPs themselves
 * (fwd.c); the frames sent from here go out through arptx.c. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "lbd.h"
#include "log.h"

int arp_open(struct lbd *l)
{
	if (arptx_open(l) < 0)
		return -1;
	ev_async_init(&l->arp_wake, arp_events_cb);
	l->arp_wake.data = l;
	ev_async_start(l->loop, &l->arp_wake);
	return 0;
}

void arp_close(struct lbd *l)
{
	if (l->ctl_tx_fd > 0)
		ev_async_stop(l->loop, &l->arp_wake);
	arptx_close(l);
}

enum arp_mac_verdict arp_mac_judge(const struct lbd_backend *b, const uint8_t *mac, uint64_t now)
{
	if (!b->mac_known)
		return ARP_MAC_FIRST;
	if (memcmp(b->mac, mac, 6) == 0)
		return ARP_MAC_SAME;
	/* The known MAC holds while it is heard: a different one replaces it only once the known one has
	 * been silent for ARP_MAC_LOCK_MS (see docs/ARCHITECTURE.md, "Backend MACs"). */
	if (now - b->mac_seen_ms >= ARP_MAC_LOCK_MS)
		return ARP_MAC_CHANGE;
	return ARP_MAC_REFUSE;
}

static const char *arp_mac_str(const uint8_t *m, char *buf)
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return buf;
}

/* A refused change is logged at most once per ARP_REFUSED_LOG_MS (with the count since the last line):
 * whoever floods the LAN with such replies must not flood the log too. The counter has every one. */
static void arp_report_refused(struct lbd *l, const struct lbd_backend *b, const uint8_t *mac, uint64_t now)
{
	char got[18], known[18], addr[IPADDR_STRLEN];

	l->ctr.arp_mac_refused++;
	l->arp_refused_unlogged++;
	if (l->arp_refused_log_ms && now - l->arp_refused_log_ms < ARP_REFUSED_LOG_MS)
		return;
	log_warn("backend %s: ARP says %s, but %s answered %llu ms ago: refused (%llu refused since the last "
		 "report; next report in %u s at the earliest)",
		 ipaddr_str(&b->addr, addr), arp_mac_str(mac, got), arp_mac_str(b->mac, known),
		 (unsigned long long)(now - b->mac_seen_ms), (unsigned long long)l->arp_refused_unlogged,
		 ARP_REFUSED_LOG_MS / 1000);
	l->arp_refused_log_ms = now;
	l->arp_refused_unlogged = 0;
}

/* Main thread. Applies one ARP frame from a backend address to every slot of that address (one per
 * service it serves). Only a backend becoming resolvable changes the usable set and rebuilds Maglev; a
 * MAC change is a 6-byte write that workers read at send time, made under dp_lock held for writing
 * just for that slot: a worker reads b->mac under the read side, held for its whole batch, so it never
 * sees half of an old MAC and half of a new one. A confirmation touches only mac_seen_ms, which no
 * worker reads: no lock. Counters and log lines count frames, not slots. */
void arp_learn(struct lbd *l, const struct ipaddr *addr, const uint8_t *mac, uint64_t now)
{
	const struct lbd_backend *refused = NULL;
	int first = 0, changed = 0;
	char buf[18], a[IPADDR_STRLEN];

	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++) {
		struct lbd_backend *b = &l->slots[i];
		if (!ipaddr_eq(&b->addr, addr))
			continue;
		switch (arp_mac_judge(b, mac, now)) {
		case ARP_MAC_SAME:
			b->mac_seen_ms = now;
			break;
		case ARP_MAC_FIRST:
			dp_write_lock(l);
			memcpy(b->mac, mac, 6);
			b->mac_known = 1;
			dp_rebuild_service(l, &l->services[b->service]);
			dp_write_unlock(l);
			b->mac_seen_ms = now;
			first = 1;
			break;
		case ARP_MAC_CHANGE:
			dp_write_lock(l);
			memcpy(b->mac, mac, 6);
			dp_write_unlock(l);
			b->mac_seen_ms = now;
			changed = 1;
			break;
		case ARP_MAC_REFUSE:
			refused = b;
			break;
		}
	}
	/* Not rate-limited: a backend becomes resolvable once per start, reload or four silent rounds. */
	if (first)
		log_info("backend %s is at %s", ipaddr_str(addr, a), arp_mac_str(mac, buf));
	if (changed) {
		l->ctr.arp_mac_changes++;
		log_rl(LOG_LVL_WARN, "backend %s moved to %s (its old MAC was silent for %u ms or more)",
		       ipaddr_str(addr, a), arp_mac_str(mac, buf), ARP_MAC_LOCK_MS);
	}
	if (refused)
		arp_report_refused(l, refused, mac, now);
}

/* A backend claiming a VIP is misconfigured; returns 0 if the claim came from no backend (the peer).
 * Main thread, no lock: answers_vip_arp is read only by the main thread (status). */
static int arp_flag_vip_claim(struct lbd *l, const uint8_t *mac, const struct ipaddr *vip)
{
	int from_backend = 0;
	char a[IPADDR_STRLEN], v[IPADDR_STRLEN];

	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++) {
		struct lbd_backend *b = &l->slots[i];
		if (ipaddr_is_none(&b->addr) || !b->mac_known || memcmp(b->mac, mac, 6) != 0)
			continue;
		from_backend = 1;
		if (!b->answers_vip_arp) {
			b->answers_vip_arp = 1;
			l->ctr.backend_arp_for_vip++;
			log_warn("backend %s answers %s for VIP %s: it is not configured for DSR (%s)",
				 ipaddr_str(&b->addr, a), ipaddr_is_v4(vip) ? "ARP" : "Neighbour Solicitations",
				 ipaddr_str(vip, v), ipaddr_is_v4(vip) ? "arp_ignore=1, arp_announce=2, VIP on lo/32"
				 : "the VIP belongs on lo as a /128, not on the LAN interface");
		}
	}
	return from_backend;
}

/* Main thread: applies what the workers saw in ARP frames. The queues are drained without dp_lock:
 * the main thread is the only writer of the slots, and arp_learn takes the write side only for a slot
 * that changes, so a burst of ARP frames never holds the workers off for the whole queue. */
void arp_events_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct lbd *l = a->data;
	uint64_t now = clock_ms();
	int peer_claims = 0;

	for (unsigned i = 0; i < l->n_workers; i++) {
		struct lbd_arpq *aq = worker_arpq(&l->workers[i]);
		uint32_t first, n = spsc_peek(&aq->q, &first);
		for (uint32_t k = 0; k < n; k++) {
			const struct lbd_arp_event *e = &aq->ev[spsc_slot(&aq->q, first + k)];
			if (e->claims_vip)
				peer_claims |= !arp_flag_vip_claim(l, e->mac, &e->addr);
			else
				arp_learn(l, &e->addr, e->mac, now);
		}
		spsc_pop(&aq->q, n);
	}
	/* A stopping lbd leaves once the new owner announces the VIPs, also when vrrpd is gone. */
	if (peer_claims && l->stopping)
		mode_peer_has_vips(l, "the peer announced the VIPs (gratuitous ARP or unsolicited NA)");
}

/* Re-resolves every backend each arp_refresh; one whose MAC has not been confirmed for four rounds is not
 * chosen. Backends still unresolved are asked again every 200 ms for 2 s after start-up or a reload, then
 * every second. */
void arp_refresh_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lbd *l = t->data;
	uint64_t now = clock_ms();
	uint64_t stale = 4ull * l->cfg->arp_refresh_ms;
	int full = now - l->arp_last_full_ms >= l->cfg->arp_refresh_ms || !l->arp_last_full_ms;
	int unresolved = 0;
	char a[IPADDR_STRLEN];

	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++) {
		struct lbd_backend *b = &l->slots[i];
		if (ipaddr_is_none(&b->addr))
			continue;
		if (b->mac_known && now - b->mac_seen_ms > stale) {
			dp_write_lock(l);
			b->mac_known = 0;
			dp_rebuild_service(l, &l->services[b->service]);
			dp_write_unlock(l);
			log_warn("backend %s stopped answering %s", ipaddr_str(&b->addr, a),
				 ipaddr_is_v4(&b->addr) ? "ARP" : "Neighbour Solicitations");
		}
		if (!b->mac_known)
			unresolved = 1;
		if (full || !b->mac_known)
			arptx_request(l, &b->addr);
	}
	/* Ask for the VIPs too: a backend that answers is misconfigured for DSR (arp_flag_vip_claim). */
	for (size_t i = 0; full && i < l->n_vips; i++)
		arptx_request(l, &l->vips[i]);
	if (full)
		l->arp_last_full_ms = now;
	double next = l->cfg->arp_refresh_ms / 1000.0;
	if (unresolved)
		next = now < l->arp_fast_until_ms ? 0.2 : 1.0;
	if (next > (l->arp_last_full_ms + l->cfg->arp_refresh_ms - now) / 1000.0)
		next = (l->arp_last_full_ms + l->cfg->arp_refresh_ms - now) / 1000.0;
	t->repeat = next > 0.01 ? next : 0.01;
	ev_timer_again(loop, t);
}
