/* The per-frame path: classify each frame from the RX ring (IPv4 or IPv6), pick the backend (connection
 * table first, then Maglev), rewrite the Ethernet header into the TX ring, answer ARP, Neighbour
 * Solicitations and ICMP/ICMPv6 echo for the VIPs,
 * queue flow changes for the peer and ARP observations for the main thread. It works on what its
 * worker hands it (struct fwd_ctx) and takes no lock: the worker holds dp_lock for reading and its own
 * lock around each batch (fwd_batch). One copy per frame, no allocation, one TX kick per 32 frames. */
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

/* Queues a flow's change for the peer (sync.c sends it): a bounded append, never a wait. */
static void fwd_sync_out(struct fwd_ctx *c, const struct flow *f, const struct flow_key *k, int deleted)
{
	struct lbd *l = c->l;
	struct lbd_syncq *sq = &c->syncq;
	struct lbd_sync_rec *r;
	uint32_t i;

	if (!l->sync_wake || !__atomic_load_n(&l->sync_on, __ATOMIC_RELAXED) || !l->active)
		return;
	i = spsc_push_slot(&sq->q);
	if (i == SPSC_FULL) {
		c->ctr.sync_dropped++;
		return;
	}
	r = &sq->rec[i];
	r->key = *k;
	if (f->backend < LBD_MAX_SLOTS)
		r->backend = l->slots[f->backend].addr;
	else
		memset(&r->backend, 0, sizeof(r->backend));
	r->state = f->state;
	r->deleted = (uint8_t)deleted;
	r->queued_ms = clock_ms();
	spsc_push(&sq->q);
	if (spsc_pushed_into_empty(&sq->q))
		ev_async_send(l->loop, l->sync_wake);
}

void fwd_flow_refresh(struct fwd_ctx *c, const struct flow *f)
{
	struct flow_key k;

	flow_key_of(c->tab.flows, f, &k);
	fwd_sync_out(c, f, &k, 0);
}

void fwd_flow_gone(void *arg, const struct flow *f, const struct flow_key *k)
{
	struct fwd_ctx *c = arg;

	dp_flow_gone(&c->tab, f);
	c->ctr.flows_expired++;
	fwd_sync_out(c, f, k, 1);
}

/* Chooses the backend of a TCP/UDP frame through the connection table. */
static uint16_t fwd_flow(struct fwd_ctx *c, const struct lbd_service *s, const struct pkt *p, uint64_t now)
{
	struct lbd *l = c->l;
	struct flow_key k;
	struct flow *f;
	uint16_t slot;
	int fresh = 0;

	memset(&k, 0, sizeof(k));
	k.saddr = p->src;
	k.daddr = p->dst;
	k.sport = s->persist ? 0 : p->sport;    /* persistence: every connection of a client, one entry */
	k.dport = p->dport;
	k.proto = p->proto;
	/* Maglev's hash only for a new flow or a move: most frames find their flow. */
	f = flow_lookup(c->tab.flows, &k);
	if (f) {
		uint8_t old_state = f->state;
		uint16_t old_slot = f->backend;
		if (p->proto == IPPROTO_TCP && !s->persist) {
			int newconn = 0;
			f->state = (uint8_t)flow_tcp_next((enum flow_state)f->state, p->tcp_flags, &newconn);
			if (newconn)
				fresh = 1;
		}
		slot = f->backend;
		/* A flow leaves its backend only when the backend is gone, down (unless on_backend_down = keep)
		 * or unreachable; draining (weight 0 or lbctl drain) keeps established flows where they are. */
		int gone = slot >= LBD_MAX_SLOTS || ipaddr_is_none(&l->slots[slot].addr);
		int down = !gone && (!l->slots[slot].healthy || !l->slots[slot].mac_known);
		if (fresh || gone ||
		    (down && !(s->on_down == CFG_DOWN_KEEP && l->slots[slot].mac_known))) {
			uint16_t n = fwd_pick(l, s, flow_hash(&k));
			if (n == LBD_NO_SLOT)
				return LBD_NO_SLOT;
			if (!fresh)
				c->ctr.flows_rescheduled++;
			dp_flow_assign(&c->tab, f, n);
			slot = n;
		}
		flow_touch(c->tab.flows, f, now);
		f->flags |= LBD_FLOW_DIRTY;
		if (f->state != old_state || f->backend != old_slot)
			fwd_sync_out(c, f, &k, 0);
		return slot;
	}
	slot = fwd_pick(l, s, flow_hash(&k));
	if (slot == LBD_NO_SLOT)
		return slot;
	uint8_t st = s->persist ? FLOW_PERSIST : FLOW_UDP;
	if (p->proto == IPPROTO_TCP && !s->persist) {
		/* A first segment without SYN (a flow that began before us, or a spoofed ACK) starts in SYN and
		 * with its short timeout: the next ACK makes it established. One packet per tuple, as a spoofed
		 * flood sends, never buys an entry for tcp_established_timeout. */
		st = (uint8_t)flow_tcp_next(FLOW_TCP_SYN, p->tcp_flags, NULL);
		if (st == FLOW_TCP_EST)
			st = FLOW_TCP_SYN;
	}
	f = dp_flow_insert(&c->tab, &k, slot, st, now);
	if (!f) {
		c->ctr.flow_table_full++;
	} else {
		c->ctr.flows_created++;
		fwd_sync_out(c, f, &k, 0);
	}
	return slot;
}

/* The backend owning the flow an ICMP error is about: the quoted header is the backend's reply
 * (VIP -> client), so the flow key is the quoted header reversed. */
static uint16_t fwd_icmp_error(struct fwd_ctx *c, const struct pkt *p)
{
	struct lbd *l = c->l;
	const struct lbd_service *s;
	struct flow_key k;
	struct flow *f;
	uint32_t h;

	if (!p->have_inner || !ipaddr_eq(&p->in_src, &p->dst))
		return LBD_NO_SLOT;
	s = dp_lookup_service(l, &p->in_src, p->in_proto, p->in_sport);
	if (!s)
		return LBD_NO_SLOT;
	memset(&k, 0, sizeof(k));
	k.saddr = p->in_dst;
	k.daddr = p->in_src;
	k.sport = s->persist ? 0 : p->in_dport;
	k.dport = p->in_sport;
	k.proto = p->in_proto;
	h = flow_hash(&k);
	f = flow_lookup(c->tab.flows, &k);
	if (f && f->backend < LBD_MAX_SLOTS && l->slots[f->backend].mac_known)
		return f->backend;
	return fwd_pick(l, s, h);
}

/* Answers an ICMP or ICMPv6 echo request to a VIP in the TX ring: the request copied once with its
 * addresses swapped, type 0 (ICMP) or 129 (ICMPv6), checksums recomputed. An IPv6 request with extension
 * headers is not answered (it would have to be rebuilt without them). */
static void fwd_echo_reply(struct fwd_ctx *c, const uint8_t *frame, const struct pkt *p)
{
	struct lbd *l = c->l;
	struct virtio_net_hdr *vh;
	uint32_t len = 14 + p->ip_len;
	int v6 = p->kind == PKT_IPV6;
	uint8_t *d;

	if (v6 && p->ihl != 40) {
		c->ctr.drop_other++;
		return;
	}
	d = ring_tx_reserve(c->ring, len, &vh);
	if (!d)
		return;
	memset(vh, 0, sizeof(*vh));
	memcpy(d, frame + 6, 6);
	memcpy(d + 6, l->mac, 6);
	memcpy(d + 12, frame + 12, len - 12);
	uint8_t *ip = d + 14, *icmp = ip + p->ihl;
	uint16_t sum;
	if (v6) {
		memcpy(ip + 8, p->dst.b, 16);
		memcpy(ip + 24, p->src.b, 16);
		ip[7] = 64;
		icmp[0] = 129;
		icmp[2] = icmp[3] = 0;
		sum = pkt_csum6(&p->dst, &p->src, IPPROTO_ICMPV6, icmp, p->ip_len - p->ihl);
	} else {
		uint32_t sa = ipaddr_v4(&p->src), da = ipaddr_v4(&p->dst);
		memcpy(ip + 12, &da, 4);
		memcpy(ip + 16, &sa, 4);
		ip[8] = 64;
		ip[10] = ip[11] = 0;
		sum = pkt_csum(ip, p->ihl);
		memcpy(ip + 10, &sum, 2);
		icmp[0] = 0;
		icmp[2] = icmp[3] = 0;
		sum = pkt_csum(icmp, p->ip_len - p->ihl);
	}
	memcpy(icmp + 2, &sum, 2);
	ring_tx_commit(c->ring, len);
	c->ctr.icmp_echo_replies++;
}

static void fwd_send(struct fwd_ctx *c, const struct ring_frame *rf, uint16_t slot)
{
	struct lbd *l = c->l;
	struct lbd_backend *b = &l->slots[slot];

	if (ring_tx_forward(c->ring, rf, b->mac, l->mac) < 0)
		return;
	c->tab.slot_fwd[slot]++;
	c->tab.slot_bytes[slot] += rf->len;
	c->ctr.forwarded++;
	c->ctr.tx_bytes += rf->len;
}

/* The service of a fragment: the first one names it by its port, and the worker remembers that for the
 * datagram's later fragments, so two services on one VIP and protocol never split a datagram. The
 * datagram is known by what all its pieces carry (addresses, id, frag_proto): an IPv6 first fragment's
 * proto is its upper layer's, past any extension header after the fragment header, a later one's is
 * that header's. A later fragment whose first one was not seen goes to the only service of its VIP and
 * protocol (of its VIP, when an extension header hides the protocol), or is dropped (counted) when there
 * are several: it would be lost at whichever backend got it. */
static const struct lbd_service *fwd_frag_service(struct fwd_ctx *c, const struct pkt *p, uint64_t now)
{
	struct lbd *l = c->l;
	struct frag_key k = { .saddr = p->src, .daddr = p->dst, .id = p->frag_id, .proto = p->frag_proto };
	const struct lbd_service *s;
	uint16_t i;

	c->ctr.fragments++;
	if (!p->later_frag) {
		s = p->have_ports ? dp_lookup_service(l, &p->dst, p->proto, p->dport) : NULL;
		if (!s && !p->have_ports)
			s = dp_only_service(l, &p->dst, p->proto);
		if (s)
			frag_remember(&c->frags, &k, (uint16_t)(s - l->services), now);
		return s;
	}
	i = frag_recall(&c->frags, &k, now);
	if (i != FRAG_NONE && i < l->n_services)
		return &l->services[i];
	s = dp_only_service(l, &p->dst, p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP ? p->proto : DP_ANY_PROTO);
	if (!s)
		c->ctr.frag_unmatched++;
	return s;
}

/* ICMP (IPv4) or ICMPv6: echo requests and the errors that quote a flow. */
static int fwd_is_echo(const struct pkt *p)
{
	return p->kind == PKT_IPV6 ? p->icmp_type == 128 : p->icmp_type == 8;
}

/* An IPv4 or IPv6 frame that is no Neighbour Discovery. */
static void fwd_ip(struct fwd_ctx *c, const struct ring_frame *rf, const struct pkt *p, uint64_t now)
{
	struct lbd *l = c->l;
	const struct lbd_service *s;
	uint16_t slot;
	uint8_t icmp = p->kind == PKT_IPV6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;

	if (!dp_is_vip(l, &p->dst)) {
		c->ctr.drop_other++;
		return;
	}
	/* Only frames sent to our MAC: a flooded frame for another host is not ours to forward. */
	if (memcmp(rf->data, l->mac, 6) != 0) {
		c->ctr.drop_not_for_us++;
		return;
	}
	c->ctr.vip_frames++;
	if (!l->active) {
		c->ctr.drop_standby++;
		return;
	}
	if (p->proto == icmp && !p->frag) {
		if (fwd_is_echo(p)) {
			fwd_echo_reply(c, rf->data, p);
			return;
		}
		slot = fwd_icmp_error(c, p);
		if (slot == LBD_NO_SLOT) {
			c->ctr.drop_other++;
			return;
		}
		c->ctr.icmp_errors_forwarded++;
		fwd_send(c, rf, slot);
		return;
	}
	if (p->frag) {
		s = fwd_frag_service(c, p, now);
		if (!s) {
			c->ctr.drop_no_service++;
			return;
		}
		/* Every piece of a datagram goes where its addresses hash, so all reach one backend. */
		slot = fwd_pick(l, s, flow_hash_addrs(&p->src, &p->dst, p->frag_proto));
	} else {
		if (!p->have_ports) {
			c->ctr.drop_no_service++;
			return;
		}
		s = dp_lookup_service(l, &p->dst, p->proto, p->dport);
		if (!s) {
			c->ctr.drop_no_service++;
			return;
		}
		slot = fwd_flow(c, s, p, now);
	}
	if (slot == LBD_NO_SLOT) {
		c->ctr.drop_no_backend++;
		return;
	}
	fwd_send(c, rf, slot);
}

/* Hands an ARP observation to the main thread (arp_events_cb). */
static void fwd_arp_event(struct fwd_ctx *c, const struct ipaddr *addr, const uint8_t *mac, int claims_vip)
{
	struct lbd_arp_event *e;
	uint32_t i = spsc_push_slot(&c->arpq.q);

	if (i == SPSC_FULL)
		return;     /* the main thread is behind; ARP repeats, nothing is lost for long */
	e = &c->arpq.ev[i];
	e->addr = *addr;
	memcpy(e->mac, mac, 6);
	e->claims_vip = (uint8_t)claims_vip;
	spsc_push(&c->arpq.q);
	ev_async_send(c->l->loop, &c->l->arp_wake);
}

/* ARP: answers requests for the VIPs while the owner; passes what it learns to the main thread (the
 * MACs of backends, anyone claiming a VIP). */
static void fwd_arp(struct fwd_ctx *c, const struct pkt *p)
{
	struct lbd *l = c->l;
	struct virtio_net_hdr *vh;
	struct ipaddr spa = ipaddr_from_v4(p->arp_spa), tpa = ipaddr_from_v4(p->arp_tpa);
	uint8_t *d;

	if (memcmp(p->arp_sha, l->mac, 6) == 0)
		return;
	if (p->arp_spa && dp_is_backend(l, &spa))
		fwd_arp_event(c, &spa, p->arp_sha, 0);
	/* A reply from a VIP, or a gratuitous request (sender = target = VIP): someone claims it. */
	if (dp_is_vip(l, &spa) && (p->arp_op == 2 || p->arp_spa == p->arp_tpa))
		fwd_arp_event(c, &spa, p->arp_sha, 1);
	if (p->arp_op == 1 && dp_is_vip(l, &tpa) && p->arp_spa != p->arp_tpa) {
		if (!l->owner) {
			c->ctr.drop_standby++;
			return;
		}
		d = ring_tx_reserve(c->ring, PKT_ARP_LEN, &vh);
		if (!d)
			return;
		memset(vh, 0, sizeof(*vh));
		pkt_arp_build(d, l->mac, p->arp_sha, 2, p->arp_tpa, p->arp_sha, p->arp_spa);
		ring_tx_commit(c->ring, PKT_ARP_LEN);
		c->ctr.arp_replies++;
	}
}

/* Neighbour Discovery (RFC 4861), the IPv6 counterpart of fwd_arp: answers solicitations for the VIPs
 * while the owner (solicited, override), and passes what advertisements and solicitations say about
 * backends and VIPs to the main thread. Only messages that passed pkt.c's validation get here. */
static void fwd_ndp(struct fwd_ctx *c, const uint8_t *frame, const struct pkt *p)
{
	struct lbd *l = c->l;
	struct virtio_net_hdr *vh;
	const uint8_t *mac = p->nd_lladdr ? p->nd_lladdr : frame + 6;
	uint8_t *d;

	if (memcmp(frame + 6, l->mac, 6) == 0)
		return;
	if (p->icmp_type == 136) {
		if (dp_is_backend(l, &p->nd_target) && p->nd_lladdr)
			fwd_arp_event(c, &p->nd_target, p->nd_lladdr, 0);
		else if (dp_is_vip(l, &p->nd_target))
			fwd_arp_event(c, &p->nd_target, mac, 1);
		return;
	}
	/* A solicitation: its sender, if a backend, says where it is. */
	if (p->nd_lladdr && !ipaddr_is_none(&p->src) && dp_is_backend(l, &p->src))
		fwd_arp_event(c, &p->src, p->nd_lladdr, 0);
	if (!dp_is_vip(l, &p->nd_target))
		return;
	if (!l->owner) {
		c->ctr.drop_standby++;
		return;
	}
	d = ring_tx_reserve(c->ring, PKT_NA_LEN, &vh);
	if (!d)
		return;
	memset(vh, 0, sizeof(*vh));
	if (ipaddr_is_none(&p->src))            /* duplicate address detection: answer all nodes */
		pkt_una_build(d, l->mac, &p->nd_target);
	else
		pkt_na_build(d, l->mac, mac, &p->nd_target, &p->src, &p->nd_target, 0x60);
	ring_tx_commit(c->ring, PKT_NA_LEN);
	c->ctr.nd_adverts_sent++;
}

static void fwd_frame(struct fwd_ctx *c, const struct ring_frame *rf, uint64_t now)
{
	struct pkt p;
	enum pkt_err e;

	c->ctr.rx_frames++;
	if (rf->len != rf->wire_len) {          /* truncated: never forward a part of a frame */
		c->ctr.drop_malformed++;
		return;
	}
	if (rf->status & TP_STATUS_VLAN_VALID) {
		c->ctr.drop_vlan++;
		return;
	}
	e = pkt_parse(rf->data, rf->len, &p);
	if (e != PKT_OK) {
		if (e == PKT_BAD_EXT)
			c->ctr.drop_ipv6_ext++;
		else
			c->ctr.drop_malformed++;
		log_rl(LOG_LVL_DEBUG, "malformed frame (%u bytes): %s", rf->len, pkt_err_str(e));
		return;
	}
	switch (p.kind) {
	case PKT_IPV4:
		fwd_ip(c, rf, &p, now);
		break;
	case PKT_IPV6:
		if (p.proto == IPPROTO_ICMPV6 && (p.icmp_type == 135 || p.icmp_type == 136)) {
			if (p.nd_valid)
				fwd_ndp(c, rf->data, &p);
			else
				c->ctr.drop_malformed++;
			break;
		}
		fwd_ip(c, rf, &p, now);
		break;
	case PKT_ARP:
		fwd_arp(c, &p);
		break;
	case PKT_VLAN:
		c->ctr.drop_vlan++;
		break;
	default:
		c->ctr.drop_not_ipv4++;
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
static int fwd_wait(struct fwd_ctx *c, struct ring_frame *rf, uint64_t deadline)
{
	static const struct timespec nap = { 0, FWD_NAP_NS };
	uint64_t now = clock_ns(), until = now + FWD_SPIN_NS;

	if (now >= deadline)
		return -1;
	do {
		if (ring_rx_next(c->ring, rf) == 0)
			return 0;
		cpu_relax();
	} while (clock_ns() < until);
	for (int i = 0; i < FWD_NAPS; i++) {
		ring_tx_kick(c->ring);
		nanosleep(&nap, NULL);
		if (ring_rx_next(c->ring, rf) == 0)
			return 0;
	}
	return -1;
}

void fwd_batch(struct fwd_ctx *c, int busy_wait)
{
	struct ring_frame rf;
	uint64_t t = clock_ns(), deadline = t + FWD_MAX_NS_PER_WAKEUP;
	uint64_t now = t / 1000000;
	unsigned n = 0;

	while (n < FWD_MAX_PER_WAKEUP) {
		if (ring_rx_next(c->ring, &rf) < 0) {
			/* A single frame (a quiet ring) leaves at once; a busy ring keeps the worker here. */
			if (n < 2 || !busy_wait || fwd_wait(c, &rf, deadline) < 0)
				break;
			now = clock_ms();
		}
		fwd_frame(c, &rf, now);
		if (++n % FWD_BATCH == 0) {
			ring_tx_kick(c->ring);
			t = clock_ns();
			if (t >= deadline)
				break;
			now = t / 1000000;
		}
	}
	ring_rx_done(c->ring);
	ring_tx_kick(c->ring);
}
