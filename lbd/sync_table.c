/* Connection-state sync, the table side: flows a peer sent installed into the workers' tables, our
 * table read out in chunks for a bulk transfer, and the workers' update queues emptied when no peer
 * takes them. Runs on the main thread; reaches the workers only through worker.h and dp.c. */
#include <arpa/inet.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "ipaddr.h"
#include "lbd.h"
#include "sync_peer.h"

/* What a flow costs, IPv4 as before IPv6, IPv6 in the bytes fields (proto/sync.proto): a typical flow
 * takes 31 and 70 bytes of a message (at most SYNC_FLOW_WIRE_V4 and _V6), and a struct sync_flow_buf
 * (160 bytes) of the scratch either way. */
int sync_table_fill(struct sync_flow_buf *fb, const struct sync_flow_rec *r)
{
	Dsrlb__SyncFlow *sf = &fb->sf;
	const struct flow_key *k = &r->key;
	int v4 = ipaddr_is_v4(&k->saddr);

	if (ipaddr_is_v4(&k->daddr) != v4 || (!ipaddr_is_none(&r->backend) && ipaddr_is_v4(&r->backend) != v4))
		return -1;
	dsrlb__sync_flow__init(sf);
	if (v4) {
		sf->saddr = ipaddr_v4(&k->saddr);
		sf->daddr = ipaddr_v4(&k->daddr);
		sf->backend = ipaddr_is_none(&r->backend) ? 0 : ipaddr_v4(&r->backend);
	} else {
		memcpy(fb->saddr6, k->saddr.b, 16);
		memcpy(fb->daddr6, k->daddr.b, 16);
		memcpy(fb->backend6, r->backend.b, 16);
		sf->saddr6 = (ProtobufCBinaryData){ 16, fb->saddr6 };
		sf->daddr6 = (ProtobufCBinaryData){ 16, fb->daddr6 };
		sf->backend6 = (ProtobufCBinaryData){ 16, fb->backend6 };
	}
	sf->sport = ntohs(k->sport);
	sf->dport = ntohs(k->dport);
	sf->proto = k->proto;
	sf->state = r->state;
	sf->idle_ms = r->idle_ms;
	sf->deleted = r->deleted;
	return 0;
}

size_t sync_table_wire_max(const struct flow_key *k)
{
	return ipaddr_is_v4(&k->saddr) ? SYNC_FLOW_WIRE_V4 : SYNC_FLOW_WIRE_V6;
}

int sync_table_add(struct sync_shared *sh, struct sync_batch *b, const struct sync_flow_rec *r)
{
	size_t w = sync_table_wire_max(&r->key);

	if (b->n >= SYNC_BATCH || b->bytes + w > AUTH_MAX_MSG - SYNC_MSG_HEAD_MAX)
		return 0;
	if (sync_table_fill(&sh->msg_flows[b->n], r) < 0)
		return -1;
	sh->msg_ptrs[b->n] = &sh->msg_flows[b->n].sf;
	b->n++;
	b->bytes += w;
	return 1;
}

/* One IPv6 address field: exactly 16 bytes, and not an IPv4-mapped address (IPv4 has fields of its own). */
static const char *sync_table_addr6(const ProtobufCBinaryData *d, struct ipaddr *out)
{
	if (d->len != 16)
		return "an IPv6 address field that is not 16 bytes";
	*out = ipaddr_from_v6(d->data);
	return ipaddr_is_v4(out) ? "an IPv4-mapped address in an IPv6 field" : NULL;
}

const char *sync_table_decode(const Dsrlb__SyncFlow *sf, struct sync_flow_rec *r)
{
	const char *why;

	if (sf->sport > 65535 || sf->dport > 65535 || sf->proto > 255 || sf->state > FLOW_STATE_LAST)
		return "a port, protocol or state out of range";
	memset(r, 0, sizeof(*r));
	if (!sf->saddr6.len) {
		if (sf->daddr6.len || sf->backend6.len)
			return "an IPv4 flow with IPv6 address fields";
		r->key.saddr = ipaddr_from_v4(sf->saddr);
		r->key.daddr = ipaddr_from_v4(sf->daddr);
		if (sf->backend)
			r->backend = ipaddr_from_v4(sf->backend);
	} else {
		if (sf->saddr || sf->daddr || sf->backend)
			return "an IPv6 flow with IPv4 address fields";
		if ((why = sync_table_addr6(&sf->saddr6, &r->key.saddr)) || (why = sync_table_addr6(&sf->daddr6,
		    &r->key.daddr)) || (why = sync_table_addr6(&sf->backend6, &r->backend)))
			return why;
	}
	r->key.sport = htons((uint16_t)sf->sport);
	r->key.dport = htons((uint16_t)sf->dport);
	r->key.proto = (uint8_t)sf->proto;
	r->state = (uint8_t)sf->state;
	r->idle_ms = sf->idle_ms;
	r->deleted = sf->deleted;
	return NULL;
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

enum sync_apply sync_table_apply(struct lbd *l, const struct sync_flow_rec *r)
{
	const struct flow_key *k = &r->key;
	enum sync_apply res = SYNC_APPLY_DONE;
	struct lbd_worker *w;
	struct dp_table *t;
	struct lbd_service *svc;
	struct lbd_backend *b;
	struct flow *f;
	uint64_t now = clock_ms();

	svc = dp_lookup_service(l, &k->daddr, k->proto, k->dport);
	b = svc ? dp_find_backend(l, svc, &r->backend) : NULL;
	/* The flow belongs in the table of the worker its packets will reach. */
	w = worker_of(l, &k->saddr, &k->daddr, k->sport, k->dport);
	worker_lock(w);
	t = worker_table(w);
	if (!ipaddr_is_v4(&k->saddr) && !flow_ipv6(t->flows)) {
		/* Our config has no IPv6 service (the peer's differs, or has not been reloaded yet). */
		worker_unlock(w);
		return SYNC_APPLY_NO_IPV6;
	}
	f = flow_lookup(t->flows, k);
	if (r->deleted) {
		if (f && !sync_table_ours(l, f))
			dp_flow_delete(t, f);
	} else if (f && sync_table_ours(l, f)) {
		/* our own entry wins while we forward it */
	} else if (!b) {
		res = SYNC_APPLY_UNKNOWN_BACKEND;
	} else if (f) {
		uint16_t slot = (uint16_t)(b - l->slots);
		if (f->backend != slot)
			dp_flow_assign(t, f, slot);
		f->state = r->state;
		flow_set_idle(t->flows, f, now, r->idle_ms);
	} else {
		f = dp_flow_insert(t, k, (uint16_t)(b - l->slots), r->state, now);
		if (f)
			flow_set_idle(t->flows, f, now, r->idle_ms);
		else
			l->ctr.flow_table_full++;       /* the main thread's own counters: we run there */
	}
	worker_unlock(w);
	return res;
}

/* The cursor names the worker in its top 4 bits and the position in that worker's table below. */
#define SYNC_CURSOR_SHIFT 28
size_t sync_table_chunk(struct sync_shared *sh, uint32_t *cursor_io, int *done)
{
	struct lbd *l = sh->l;
	uint64_t now = clock_ms();
	struct sync_batch batch = { 0, 0 };
	int full = 0;
	unsigned wi = *cursor_io >> SYNC_CURSOR_SHIFT;
	uint32_t cursor = *cursor_io & ((1u << SYNC_CURSOR_SHIFT) - 1);

	while (!full && wi < l->n_workers) {
		struct lbd_worker *w = &l->workers[wi];
		worker_lock(w);
		struct flow_table *t = worker_table(w)->flows;
		for (;;) {
			uint32_t at = cursor;
			struct flow *f = flow_next(t, &cursor);
			struct sync_flow_rec r;

			if (!f)
				break;
			if (f->backend >= LBD_MAX_SLOTS || ipaddr_is_none(&l->slots[f->backend].addr))
				continue;
			flow_key_of(t, f, &r.key);
			r.backend = l->slots[f->backend].addr;
			r.state = f->state;
			r.idle_ms = flow_idle_ms(t, f, now);
			r.deleted = 0;
			if (sync_table_add(sh, &batch, &r) == 0) {
				cursor = at;            /* this flow starts the next chunk */
				full = 1;
				break;
			}
		}
		worker_unlock(w);
		if (!full) {
			wi++;
			cursor = 0;
		}
	}
	*cursor_io = (uint32_t)wi << SYNC_CURSOR_SHIFT | cursor;
	*done = wi >= l->n_workers;
	return batch.n;
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
