/* Connection-state sync, the table side: flows a peer sent installed into the workers' tables, our
 * table read out in chunks for a bulk transfer, and the workers' update queues emptied when no peer
 * takes them. Runs on the main thread; reaches the workers only through worker.h and dp.c. */
#include <arpa/inet.h>
#include <string.h>

#include "clock.h"
#include "lbd.h"
#include "sync_peer.h"

void sync_table_fill(Dsrlb__SyncFlow *sf, const struct flow_key *k, uint32_t backend, uint8_t state,
		     uint32_t idle_ms, int deleted)
{
	dsrlb__sync_flow__init(sf);
	sf->saddr = k->saddr;
	sf->daddr = k->daddr;
	sf->sport = ntohs(k->sport);
	sf->dport = ntohs(k->dport);
	sf->proto = k->proto;
	sf->backend = backend;
	sf->state = state;
	sf->idle_ms = idle_ms;
	sf->deleted = deleted;
}

/* Whether our entry outranks what a peer says about it. A pair: while we forward, every entry is ours
 * (the standby's updates could only be stale). mode = ecmp, where every node forwards: only an entry our
 * own forwarding used since its last refresh (LBD_FLOW_DIRTY), so the node that carries a flow now owns
 * it, and a flow the router moved to another node follows that node's updates and deletion. */
static int sync_table_ours(const struct lbd *l, const struct flow *f)
{
	if (!l->active)
		return 0;
	return l->cfg->mode != CFG_MODE_ECMP || (f->flags & LBD_FLOW_DIRTY);
}

void sync_table_apply(struct lbd *l, const Dsrlb__SyncFlow *sf, uint64_t *unknown_backend)
{
	struct lbd_worker *w;
	struct dp_table *t;
	struct lbd_service *svc;
	struct lbd_backend *b;
	struct flow_key k;
	struct flow *f;
	uint64_t now = clock_ms();

	if (sf->sport > 65535 || sf->dport > 65535 || sf->proto > 255 || sf->state > FLOW_STATE_LAST)
		return;
	memset(&k, 0, sizeof(k));
	k.saddr = sf->saddr;
	k.daddr = sf->daddr;
	k.sport = htons((uint16_t)sf->sport);
	k.dport = htons((uint16_t)sf->dport);
	k.proto = (uint8_t)sf->proto;
	svc = dp_lookup_service(l, k.daddr, k.proto, k.dport);
	b = svc ? dp_find_backend(l, svc, sf->backend) : NULL;
	/* The flow belongs in the table of the worker its packets will reach. */
	w = worker_of(l, k.saddr, k.daddr, k.sport, k.dport);
	worker_lock(w);
	t = worker_table(w);
	f = flow_lookup(t->flows, &k);
	if (sf->deleted) {
		if (f && !sync_table_ours(l, f))
			dp_flow_delete(t, f);
	} else if (f && sync_table_ours(l, f)) {
		/* our own entry wins while we forward it */
	} else if (!b) {
		(*unknown_backend)++;
	} else if (f) {
		uint16_t slot = (uint16_t)(b - l->slots);
		if (f->backend != slot)
			dp_flow_assign(t, f, slot);
		f->state = (uint8_t)sf->state;
		flow_set_idle(t->flows, f, now, sf->idle_ms);
	} else {
		f = dp_flow_insert(t, &k, (uint16_t)(b - l->slots), (uint8_t)sf->state, now);
		if (f)
			flow_set_idle(t->flows, f, now, sf->idle_ms);
		else
			l->ctr.flow_table_full++;       /* the main thread's own counters: we run there */
	}
	worker_unlock(w);
}

/* The cursor names the worker in its top 4 bits and the position in that worker's table below. */
#define SYNC_CURSOR_SHIFT 28
size_t sync_table_chunk(struct sync_shared *sh, uint32_t *cursor_io, int *done)
{
	struct lbd *l = sh->l;
	uint64_t now = clock_ms();
	size_t n = 0;
	struct flow *f;
	unsigned wi = *cursor_io >> SYNC_CURSOR_SHIFT;
	uint32_t cursor = *cursor_io & ((1u << SYNC_CURSOR_SHIFT) - 1);

	while (n < SYNC_BATCH && wi < l->n_workers) {
		struct lbd_worker *w = &l->workers[wi];
		worker_lock(w);
		struct flow_table *t = worker_table(w)->flows;
		while (n < SYNC_BATCH && (f = flow_next(t, &cursor))) {
			uint32_t b = f->backend < LBD_MAX_SLOTS ? l->slots[f->backend].addr : 0;
			if (!b)
				continue;
			sync_table_fill(&sh->msg_flows[n], &f->key, b, f->state, flow_idle_ms(t, f, now), 0);
			sh->msg_ptrs[n] = &sh->msg_flows[n];
			n++;
		}
		worker_unlock(w);
		if (n < SYNC_BATCH) {
			wi++;
			cursor = 0;
		}
	}
	*cursor_io = (uint32_t)wi << SYNC_CURSOR_SHIFT | cursor;
	*done = wi >= l->n_workers;
	return n;
}

uint64_t sync_table_discard(struct lbd *l)
{
	uint64_t dropped = 0;

	for (unsigned i = 0; i < l->n_workers; i++) {
		struct lbd_syncq *sq = worker_syncq(&l->workers[i]);
		uint32_t first, n = spsc_peek(&sq->q, &first);
		dropped += n;
		spsc_pop(&sq->q, n);
	}
	return dropped;
}
