/* ARP on the LAN: answers requests for the VIPs while active, announces them with gratuitous ARP on
 * activation, and resolves backend MAC addresses (periodic requests, learning from any ARP a backend
 * sends). A backend seen claiming a VIP is flagged: it is not set up for DSR. */
#include <arpa/inet.h>
#include <string.h>

#include "clock.h"
#include "lbd.h"
#include "log.h"
#include "pkt.h"

static const uint8_t arp_bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* Writes an Ethernet/ARP frame into the TX ring. */
static int arp_emit(struct lbd *l, const uint8_t *eth_dst, uint16_t op, const uint8_t *sha, uint32_t spa,
		    const uint8_t *tha, uint32_t tpa)
{
	struct virtio_net_hdr *vh;
	uint8_t *d = ring_tx_reserve(l->worker.ring, 60, &vh);

	if (!d)
		return -1;
	memset(vh, 0, sizeof(*vh));
	memset(d, 0, 60);
	memcpy(d, eth_dst, 6);
	memcpy(d + 6, l->mac, 6);
	d[12] = 0x08;
	d[13] = 0x06;
	uint8_t *a = d + 14;
	a[1] = 1;                       /* Ethernet */
	a[2] = 0x08;                    /* IPv4 */
	a[4] = 6;
	a[5] = 4;
	a[7] = (uint8_t)op;
	memcpy(a + 8, sha, 6);
	memcpy(a + 14, &spa, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, &tpa, 4);
	ring_tx_commit(l->worker.ring, 60);
	return 0;
}

int arp_send_request(struct lbd *l, uint32_t target)
{
	static const uint8_t zero[6];

	l->ctr.arp_requests_sent++;
	return arp_emit(l, arp_bcast, 1, l->mac, l->node_addr, zero, target);
}

void arp_send_garp_burst(struct lbd *l)
{
	static const uint8_t zero[6];

	for (uint32_t n = 0; n < l->cfg->garp_count; n++) {
		for (size_t i = 0; i < l->n_vips; i++) {
			/* Gratuitous ARP as a request (sender = target = VIP), which every stack accepts. */
			if (arp_emit(l, arp_bcast, 1, l->mac, l->vips[i], zero, l->vips[i]) == 0)
				l->ctr.garp_sent++;
		}
	}
	ring_tx_kick(l->worker.ring);
}

static void arp_learn(struct lbd *l, uint32_t addr, const uint8_t *mac, uint64_t now)
{
	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++) {
		struct lbd_backend *b = &l->slots[i];
		if (b->addr != addr)
			continue;
		b->mac_seen_ms = now;
		if (b->mac_known && memcmp(b->mac, mac, 6) == 0)
			continue;
		memcpy(b->mac, mac, 6);
		b->mac_known = 1;
		log_info("backend %s is at %02x:%02x:%02x:%02x:%02x:%02x", inet_ntoa((struct in_addr){ addr }),
			 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
		dp_rebuild_service(l, &l->services[b->service]);
	}
}

static void arp_flag_vip_claim(struct lbd *l, const uint8_t *mac, uint32_t vip)
{
	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++) {
		struct lbd_backend *b = &l->slots[i];
		if (b->addr && b->mac_known && memcmp(b->mac, mac, 6) == 0 && !b->answers_vip_arp) {
			b->answers_vip_arp = 1;
			l->ctr.backend_arp_for_vip++;
			log_warn("backend %s answers ARP for VIP %s: it is not configured for DSR "
				 "(arp_ignore=1, arp_announce=2, VIP on lo/32)",
				 inet_ntoa((struct in_addr){ b->addr }), inet_ntoa((struct in_addr){ vip }));
		}
	}
}

void arp_input(struct lbd_worker *w, const uint8_t *frame, const void *pktp)
{
	const struct pkt *p = pktp;
	struct lbd *l = w->lbd;

	if (memcmp(p->arp_sha, l->mac, 6) == 0)
		return;
	if (p->arp_spa)
		arp_learn(l, p->arp_spa, p->arp_sha, clock_ms());
	if (dp_is_vip(l, p->arp_spa) && p->arp_op == 2)
		arp_flag_vip_claim(l, p->arp_sha, p->arp_spa);
	if (p->arp_op == 1 && dp_is_vip(l, p->arp_tpa) && p->arp_spa != p->arp_tpa) {
		if (!l->active) {
			l->ctr.drop_standby++;
			return;
		}
		if (arp_emit(l, p->arp_sha, 2, l->mac, p->arp_tpa, p->arp_sha, p->arp_spa) == 0)
			l->ctr.arp_replies++;
	}
	(void)frame;
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

	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++) {
		struct lbd_backend *b = &l->slots[i];
		if (!b->addr)
			continue;
		if (b->mac_known && now - b->mac_seen_ms > stale) {
			b->mac_known = 0;
			log_warn("backend %s stopped answering ARP", inet_ntoa((struct in_addr){ b->addr }));
			dp_rebuild_service(l, &l->services[b->service]);
		}
		if (!b->mac_known)
			unresolved = 1;
		if (full || !b->mac_known)
			arp_send_request(l, b->addr);
	}
	/* Ask for the VIPs too: a backend that answers is misconfigured for DSR (arp_flag_vip_claim). */
	for (size_t i = 0; full && i < l->n_vips; i++)
		arp_send_request(l, l->vips[i]);
	if (full)
		l->arp_last_full_ms = now;
	ring_tx_kick(l->worker.ring);
	double next = l->cfg->arp_refresh_ms / 1000.0;
	if (unresolved)
		next = now < l->arp_fast_until_ms ? 0.2 : 1.0;
	if (next > (l->arp_last_full_ms + l->cfg->arp_refresh_ms - now) / 1000.0)
		next = (l->arp_last_full_ms + l->cfg->arp_refresh_ms - now) / 1000.0;
	t->repeat = next > 0.01 ? next : 0.01;
	ev_timer_again(loop, t);
}
