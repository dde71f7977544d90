/* The lbd state the lbd fuzz targets start from: the cluster of fuzz.h applied by dp_apply_config, one
 * worker with no thread and a stand-in ring (below), every backend resolved at 02:00:00:00:<slot> (our
 * MAC 02:00:00:00:00:01), and a second, degraded backend set (web's first backend down, dns's first
 * unresolved, mail's only one drained) with Maglev tables of its own, so an input picks either at the
 * cost of a copy. */
#ifndef DSR_FUZZ_LBD_H
#define DSR_FUZZ_LBD_H

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lbd/lbd.h"

/* The ring API of lbd/ring.h over frames the target queues: defined here, so the linker never pulls
 * lbd/ring.c in. Whatever lbd transmits is copied into a buffer and checked for size. */
#define FUZZ_FRAMES   64
#define FUZZ_FRAME_MAX 9216
#define FUZZ_TX_MAX   65536

struct ring {
	uint8_t *frames[FUZZ_FRAMES];
	uint32_t lens[FUZZ_FRAMES], status[FUZZ_FRAMES];
	size_t n, next;
	uint8_t tx[FUZZ_TX_MAX];
	struct virtio_net_hdr vnet;
	uint32_t reserved;
	int in_tx;
};

static struct ring fake;
static struct lbd L;
static struct lbd_worker W;

struct ring *ring_open(const struct ring_params *p) { return NULL; }
void ring_close(struct ring *r) { }
int ring_rx_fd(const struct ring *r) { return -1; }
int ring_set_filter(struct ring *r, const struct sock_filter *f, size_t len) { return 0; }
int ring_ifindex(const struct ring *r) { return 1; }
const uint8_t *ring_mac(const struct ring *r) { return L.mac; }
void ring_rx_done(struct ring *r) { }
void ring_tx_kick(struct ring *r) { }
void ring_stats(struct ring *r, struct ring_stats *out) { memset(out, 0, sizeof(*out)); }

int ring_rx_next(struct ring *r, struct ring_frame *f)
{
	if (r->next == r->n)
		return -1;
	memset(f, 0, sizeof(*f));
	f->data = r->frames[r->next];
	f->len = r->lens[r->next];
	f->wire_len = f->len + ((r->status[r->next] & 2) ? 1 : 0);
	f->status = (r->status[r->next] & 1) ? TP_STATUS_VLAN_VALID : 0;
	r->next++;
	return 0;
}

uint8_t *ring_tx_reserve(struct ring *r, uint32_t len, struct virtio_net_hdr **vnet)
{
	if (len > FUZZ_TX_MAX)
		abort();        /* lbd asked for a frame larger than any it can have received */
	r->reserved = len;
	r->in_tx = 1;
	*vnet = &r->vnet;
	return r->tx;
}

void ring_tx_commit(struct ring *r, uint32_t len)
{
	if (!r->in_tx || len > r->reserved)
		abort();
	r->in_tx = 0;
	/* What goes on the wire must at least be a whole Ethernet header. */
	if (len < 14)
		abort();
}

int ring_tx_forward(struct ring *r, const struct ring_frame *f, const uint8_t dst[6], const uint8_t src[6])
{
	if (f->len > FUZZ_TX_MAX)
		abort();
	memcpy(r->tx, dst, 6);
	memcpy(r->tx + 6, src, 6);
	memcpy(r->tx + 12, f->data + 12, f->len - 12);
	return 0;
}

struct fuzz_lbd_state {
	struct lbd_service services[CFG_MAX_SERVICES];
	struct lbd_backend slots[LBD_MAX_SLOTS];
};

static struct fuzz_lbd_state fuzz_lbd_states[2];

static void fuzz_lbd_setup(void)
{
	struct cfg *cfg;

	L.loop = ev_loop_new(EVFLAG_AUTO);
	pthread_rwlock_init(&L.dp_lock, NULL);
	L.mac[0] = 0x02;
	L.mac[5] = 0x01;
	inet_pton(AF_INET, "192.0.2.11", &L.node_addr);
	ipaddr_parse("fe80::1", &L.node_addr6);
	snprintf(L.node, sizeof(L.node), "lb1");
	L.ctl_tx_fd = -1;
	L.n_workers = 1;
	L.workers = &W;
	W.fwd.l = &L;
	W.ring = W.fwd.ring = &fake;
	pthread_mutex_init(&W.lock, NULL);
	W.fwd.tab.slot_fwd = calloc(LBD_MAX_SLOTS, sizeof(*W.fwd.tab.slot_fwd));
	W.fwd.tab.slot_bytes = calloc(LBD_MAX_SLOTS, sizeof(*W.fwd.tab.slot_bytes));
	W.fwd.tab.slot_flows = calloc(LBD_MAX_SLOTS, sizeof(*W.fwd.tab.slot_flows));
	spsc_init(&W.fwd.syncq.q, LBD_SYNCQ);
	spsc_init(&W.fwd.arpq.q, LBD_ARPQ);
	W.fwd.syncq.rec = calloc(LBD_SYNCQ, sizeof(*W.fwd.syncq.rec));
	W.rx_io.data = &W;
	ev_async_init(&L.arp_wake, arp_events_cb);
	L.arp_wake.data = &L;
	ev_async_start(L.loop, &L.arp_wake);
	mode_init(&L);
	cfg = fuzz_cfg();
	if (!W.fwd.tab.slot_fwd || !W.fwd.tab.slot_bytes || !W.fwd.tab.slot_flows || !W.fwd.syncq.rec || dp_apply_config(&L, cfg) < 0 || L.n_services != 4)
		abort();
	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++) {
		if (ipaddr_is_none(&L.slots[i].addr))
			continue;
		L.slots[i].mac[0] = 0x02;
		L.slots[i].mac[4] = (uint8_t)(i >> 8);
		L.slots[i].mac[5] = (uint8_t)i;
		L.slots[i].mac_known = 1;
	}
	dp_rebuild_all(&L);
	memcpy(fuzz_lbd_states[0].services, L.services, sizeof(L.services));
	memcpy(fuzz_lbd_states[0].slots, L.slots, sizeof(L.slots));
	for (size_t i = 0; i < L.n_services; i++)
		if (!(L.services[i].mg = maglev_create(MAGLEV_SIZE_DEFAULT)))
			abort();
	L.slots[L.services[0].slots[0]].healthy = 0;
	L.slots[L.services[1].slots[0]].mac_known = 0;
	L.slots[L.services[2].slots[0]].draining = 1;
	L.slots[L.services[3].slots[0]].healthy = 0;
	dp_rebuild_all(&L);
	memcpy(fuzz_lbd_states[1].services, L.services, sizeof(L.services));
	memcpy(fuzz_lbd_states[1].slots, L.slots, sizeof(L.slots));
}

/* Starts an input from state i, with an empty connection table of 64 flows (small, so it fills). */
static const struct fuzz_lbd_state *fuzz_lbd_begin(unsigned i)
{
	const struct fuzz_lbd_state *st = &fuzz_lbd_states[i & 1];

	memcpy(L.services, st->services, sizeof(L.services));
	memcpy(L.slots, st->slots, sizeof(L.slots));
	memset(W.fwd.tab.slot_flows, 0, LBD_MAX_SLOTS * sizeof(*W.fwd.tab.slot_flows));
	W.flows = W.fwd.tab.flows = flow_create(64, 1);
	if (!W.flows)
		abort();
	return st;
}

/* Ends an input: the table goes, and if the input changed which backends are usable (ARP resolved
 * one, a drain), the tables it rebuilt in place are rebuilt back. MAC changes alone leave them as
 * they are: Maglev depends on the usable set only. */
static void fuzz_lbd_end(const struct fuzz_lbd_state *st)
{
	flow_destroy(W.flows);
	W.flows = W.fwd.tab.flows = NULL;
	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++) {
		if (dp_backend_usable(&L.slots[i]) != dp_backend_usable(&st->slots[i])) {
			memcpy(L.slots, st->slots, sizeof(L.slots));
			dp_rebuild_all(&L);
			return;
		}
	}
}

#endif
