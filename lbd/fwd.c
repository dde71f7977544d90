/* The per-frame path: classify each frame from the RX ring, pick the backend (connection table first,
 * then Maglev), rewrite the Ethernet header into the TX ring, answer ARP and ICMP echo for the VIPs.
 * One copy per frame, no allocation, one TX kick per batch. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "frag.h"
#include "lbd.h"
#include "log.h"
#include "pkt.h"

#define FWD_BATCH 32                /* frames per TX kick: well under the TX ring's slots */
#define FWD_MAX_PER_WAKEUP 8192   /* frames, or FWD_MAX_NS_PER_WAKEUP, then the loop runs its timers */
#define FWD_MAX_NS_PER_WAKEUP 1000000   /* and the main thread may take dp_lock and the worker lock */
#define FWD_SPIN_NS 3000          /* see fwd_wait */
#define FWD_NAP_NS 50000
#define FWD_NAPS 2

/* Maglev choice for a new flow; LBD_NO_SLOT when the service has no usable backend. */
static uint16_t fwd_pick(const struct lbd *l, const struct lbd_service *s, uint32_t hash)
{
	if (s->n_usable) {
		uint16_t i = maglev_lookup(s->mg, hash);
		if (i != MAGLEV_NONE)
			return s->mg_slots[i];
	}
	if (s->sorry_slot != LBD_NO_SLOT && l->slots[s->sorry_slot].mac_known)
		return s->sorry_slot;
	return LBD_NO_SLOT;
}

void fwd_flow_gone(void *arg, const struct flow *f)
{
	struct lbd_worker *w = arg;

	if (f->backend < LBD_MAX_SLOTS)
		w->slot_flows[f->backend]--;
	w->ctr.flows_expired++;
	sync_flow_deleted(w, f);
}

/* Chooses the backend of a TCP/UDP frame through the connection table. */
static uint16_t fwd_flow(struct lbd_worker *w, const struct lbd_service *s, const struct pkt *p, uint64_t now)
{
	struct lbd *l = w->lbd;
	struct flow_key k;
	struct flow *f;
	uint32_t h;
	uint16_t slot;
	int fresh = 0;

	memset(&k, 0, sizeof(k));
	k.saddr = p->saddr;
	k.daddr = p->daddr;
	k.sport = p->sport;
	k.dport = p->dport;
	k.proto = p->proto;
	h = flow_hash(&k);
	f = flow_lookup(w->flows, &k);
	if (f) {
		uint8_t old_state = f->state;
		uint16_t old_slot = f->backend;
		if (p->proto == IPPROTO_TCP) {
			int newconn = 0;
			f->state = (uint8_t)flow_tcp_next((enum flow_state)f->state, p->tcp_flags, &newconn);
			if (newconn)
				fresh = 1;
		}
		slot = f->backend;
		/* A flow leaves its backend only when the backend is gone, down (unless on_backend_down = keep)
		 * or unreachable; draining (weight 0 or lbctl drain) keeps established flows where they are. */
		int gone = slot >= LBD_MAX_SLOTS || !l->slots[slot].addr;
		int down = !gone && (!l->slots[slot].healthy || !l->slots[slot].mac_known);
		if (fresh || gone ||
		    (down && !(s->on_down == CFG_DOWN_KEEP && l->slots[slot].mac_known))) {
			uint16_t n = fwd_pick(l, s, h);
			if (n == LBD_NO_SLOT)
				return LBD_NO_SLOT;
			if (!fresh)
				w->ctr.flows_rescheduled++;
			dp_flow_assign(w, f, n, 0);
			slot = n;
		}
		flow_touch(w->flows, f, now);
		f->flags |= LBD_FLOW_DIRTY;
		if (f->state != old_state || f->backend != old_slot)
			sync_flow_changed(w, f);
		return slot;
	}
	slot = fwd_pick(l, s, h);
	if (slot == LBD_NO_SLOT)
		return slot;
	uint8_t st = FLOW_UDP;
	if (p->proto == IPPROTO_TCP) {
		/* A first segment without SYN (a flow that began before us, or a spoofed ACK) starts in SYN and
		 * with its short timeout: the next ACK makes it established. One packet per tuple, as a spoofed
		 * flood sends, never buys an entry for tcp_established_timeout. */
		st = (uint8_t)flow_tcp_next(FLOW_TCP_SYN, p->tcp_flags, NULL);
		if (st == FLOW_TCP_EST)
			st = FLOW_TCP_SYN;
	}
	f = flow_insert(w->flows, &k, slot, st, now);
	if (!f) {
		w->ctr.flow_table_full++;
	} else {
		w->ctr.flows_created++;
		w->slot_flows[slot]++;
		sync_flow_changed(w, f);
	}
	return slot;
}

/* The backend owning the flow an ICMP error is about: the quoted header is the backend's reply
 * (VIP -> client), so the flow key is the quoted header reversed. */
static uint16_t fwd_icmp_error(struct lbd_worker *w, const struct pkt *p)
{
	struct lbd *l = w->lbd;
	const struct lbd_service *s;
	struct flow_key k;
	struct flow *f;
	uint32_t h;

	if (!p->have_inner || p->in_saddr != p->daddr)
		return LBD_NO_SLOT;
	s = dp_lookup_service(l, p->in_saddr, p->in_proto, p->in_sport);
	if (!s)
		return LBD_NO_SLOT;
	memset(&k, 0, sizeof(k));
	k.saddr = p->in_daddr;
	k.daddr = p->in_saddr;
	k.sport = p->in_dport;
	k.dport = p->in_sport;
	k.proto = p->in_proto;
	h = flow_hash(&k);
	f = flow_lookup(w->flows, &k);
	if (f && f->backend < LBD_MAX_SLOTS && l->slots[f->backend].mac_known)
		return f->backend;
	return fwd_pick(l, s, h);
}

/* Answers an ICMP echo request to a VIP in place in the TX ring: addresses swapped, type 0. */
static void fwd_echo_reply(struct lbd_worker *w, const uint8_t *frame, const struct pkt *p)
{
	struct lbd *l = w->lbd;
	struct virtio_net_hdr *vh;
	uint32_t len = 14 + p->ip_len;
	uint8_t *d = ring_tx_reserve(w->ring, len, &vh);

	if (!d)
		return;
	memset(vh, 0, sizeof(*vh));
	memcpy(d, frame + 6, 6);
	memcpy(d + 6, l->mac, 6);
	memcpy(d + 12, frame + 12, len - 12);
	uint8_t *ip = d + 14;
	memcpy(ip + 12, &p->daddr, 4);
	memcpy(ip + 16, &p->saddr, 4);
	ip[8] = 64;
	ip[10] = ip[11] = 0;
	uint16_t c = pkt_csum(ip, p->ihl);
	memcpy(ip + 10, &c, 2);
	uint8_t *icmp = ip + p->ihl;
	icmp[0] = 0;
	icmp[2] = icmp[3] = 0;
	c = pkt_csum(icmp, p->ip_len - p->ihl);
	memcpy(icmp + 2, &c, 2);
	ring_tx_commit(w->ring, len);
	w->ctr.icmp_echo_replies++;
}

static void fwd_send(struct lbd_worker *w, const struct ring_frame *rf, uint16_t slot)
{
	struct lbd *l = w->lbd;
	struct lbd_backend *b = &l->slots[slot];

	if (ring_tx_forward(w->ring, rf, b->mac, l->mac) < 0)
		return;
	w->slot_fwd[slot]++;
	w->ctr.forwarded++;
	w->ctr.tx_bytes += rf->len;
}

/* The service of a fragment: the first one names it by its port, and the worker remembers that for the
 * datagram's later fragments, so two services on one VIP and protocol never split a datagram. A later
 * fragment whose first one was not seen goes to the only service of its VIP and protocol, or is dropped
 * (counted) when there are several: it would be lost at whichever backend got it. */
static const struct lbd_service *fwd_frag_service(struct lbd_worker *w, const struct pkt *p, uint64_t now)
{
	struct lbd *l = w->lbd;
	struct frag_key k = { .saddr = p->saddr, .daddr = p->daddr, .id = p->ip_id, .proto = p->proto };
	const struct lbd_service *s;
	uint16_t i;

	w->ctr.fragments++;
	if (!p->later_frag) {
		s = p->have_ports ? dp_lookup_service(l, p->daddr, p->proto, p->dport) : NULL;
		if (!s && !p->have_ports)
			s = dp_only_service(l, p->daddr, p->proto);
		if (s)
			frag_remember(&w->frags, &k, (uint16_t)(s - l->services), now);
		return s;
	}
	i = frag_recall(&w->frags, &k, now);
	if (i != FRAG_NONE && i < l->n_services)
		return &l->services[i];
	s = dp_only_service(l, p->daddr, p->proto);
	if (!s)
		w->ctr.frag_unmatched++;
	return s;
}

static void fwd_ipv4(struct lbd_worker *w, const struct ring_frame *rf, const struct pkt *p, uint64_t now)
{
	struct lbd *l = w->lbd;
	const struct lbd_service *s;
	uint16_t slot;

	if (!dp_is_vip(l, p->daddr)) {
		w->ctr.drop_other++;
		return;
	}
	/* Only frames sent to our MAC: a flooded frame for another host is not ours to forward. */
	if (memcmp(rf->data, l->mac, 6) != 0) {
		w->ctr.drop_not_for_us++;
		return;
	}
	if (!l->active) {
		w->ctr.drop_standby++;
		return;
	}
	if (p->proto == IPPROTO_ICMP && !p->frag) {
		if (p->icmp_type == 8) {
			fwd_echo_reply(w, rf->data, p);
			return;
		}
		slot = fwd_icmp_error(w, p);
		if (slot == LBD_NO_SLOT) {
			w->ctr.drop_other++;
			return;
		}
		w->ctr.icmp_errors_forwarded++;
		fwd_send(w, rf, slot);
		return;
	}
	if (p->frag) {
		s = fwd_frag_service(w, p, now);
		if (!s) {
			w->ctr.drop_no_service++;
			return;
		}
		/* Every piece of a datagram goes where its addresses hash, so all reach one backend. */
		slot = fwd_pick(l, s, flow_hash_addrs(p->saddr, p->daddr, p->proto));
	} else {
		if (!p->have_ports) {
			w->ctr.drop_no_service++;
			return;
		}
		s = dp_lookup_service(l, p->daddr, p->proto, p->dport);
		if (!s) {
			w->ctr.drop_no_service++;
			return;
		}
		slot = fwd_flow(w, s, p, now);
	}
	if (slot == LBD_NO_SLOT) {
		w->ctr.drop_no_backend++;
		return;
	}
	fwd_send(w, rf, slot);
}

static void fwd_frame(struct lbd_worker *w, const struct ring_frame *rf, uint64_t now)
{
	struct pkt p;
	enum pkt_err e;

	w->ctr.rx_frames++;
	if (rf->len != rf->wire_len) {          /* truncated: never forward a part of a frame */
		w->ctr.drop_malformed++;
		return;
	}
	if (rf->status & TP_STATUS_VLAN_VALID) {
		w->ctr.drop_vlan++;
		return;
	}
	e = pkt_parse(rf->data, rf->len, &p);
	if (e != PKT_OK) {
		w->ctr.drop_malformed++;
		log_rl(LOG_LVL_DEBUG, "malformed frame (%u bytes): %s", rf->len, pkt_err_str(e));
		return;
	}
	switch (p.kind) {
	case PKT_IPV4:
		fwd_ipv4(w, rf, &p, now);
		break;
	case PKT_ARP:
		arp_input(w, rf->data, &p);
		break;
	case PKT_VLAN:
		w->ctr.drop_vlan++;
		break;
	default:
		w->ctr.drop_not_ipv4++;
		break;
	}
}

/* Waits for the next frame while the ring is busy. Sleeping in epoll would cost a wakeup per frame under
 * load: an inter-processor interrupt from the CPU that receives, and a context switch. So a busy worker
 * first watches the ring for FWD_SPIN_NS, holding the frames it has forwarded, then kicks them out and
 * naps FWD_NAP_NS on its own timer: the receiving CPU finds no sleeper to wake, the frames that arrive
 * meanwhile are handled as one batch, and the nap is idle time rather than a busy spin. After FWD_NAPS
 * empty naps the worker goes back to epoll. Only for the V2 ring: a V3 block is handed over whole, at
 * the earliest after its 1 ms timeout. */
static int fwd_wait(struct lbd_worker *w, struct ring_frame *rf, uint64_t deadline)
{
	static const struct timespec nap = { 0, FWD_NAP_NS };
	uint64_t now = clock_ns(), until = now + FWD_SPIN_NS;

	if (now >= deadline)
		return -1;
	do {
		if (ring_rx_next(w->ring, rf) == 0)
			return 0;
		cpu_relax();
	} while (clock_ns() < until);
	for (int i = 0; i < FWD_NAPS; i++) {
		ring_tx_kick(w->ring);
		nanosleep(&nap, NULL);
		if (ring_rx_next(w->ring, rf) == 0)
			return 0;
	}
	return -1;
}

void fwd_rx_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct lbd_worker *w = io->data;
	struct ring_frame rf;
	uint64_t t = clock_ns(), deadline = t + FWD_MAX_NS_PER_WAKEUP;
	uint64_t now = t / 1000000;
	unsigned n = 0;

	worker_enter(w);
	while (n < FWD_MAX_PER_WAKEUP) {
		if (ring_rx_next(w->ring, &rf) < 0) {
			/* A single frame (a quiet ring) leaves at once; a busy ring keeps the worker here. */
			if (n < 2 || !w->busy_wait || fwd_wait(w, &rf, deadline) < 0)
				break;
			now = clock_ms();
		}
		fwd_frame(w, &rf, now);
		if (++n % FWD_BATCH == 0) {
			ring_tx_kick(w->ring);
			t = clock_ns();
			if (t >= deadline)
				break;
			now = t / 1000000;
		}
	}
	ring_rx_done(w->ring);
	ring_tx_kick(w->ring);
	worker_leave(w);
}
