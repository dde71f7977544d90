/* The shared data-plane state and how it changes: services, backend slots, one Maglev table per
 * service, dp_lock, and the one place a flow gets its backend (so each worker's per-backend flow count
 * follows it). A backend keeps its slot across reloads (flows name backends by slot), so a reload
 * changes the set without disturbing established flows; flows of a removed backend are dropped from
 * the table. dp.c calls no other module of the packet path: it reaches the workers' tables (their data)
 * only under dp_lock held for writing, which keeps every worker out. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbd.h"
#include "log.h"

int dp_backend_usable(const struct lbd_backend *b)
{
	return !ipaddr_is_none(&b->addr) && b->mac_known && b->healthy && !b->draining && b->weight > 0;
}

int dp_is_vip(const struct lbd *l, const struct ipaddr *addr)
{
	for (size_t i = 0; i < l->n_vips; i++)
		if (ipaddr_eq(&l->vips[i], addr))
			return 1;
	return 0;
}

int dp_is_backend(const struct lbd *l, const struct ipaddr *addr)
{
	for (size_t i = 0; i < l->n_services; i++) {
		const struct lbd_service *s = &l->services[i];
		for (size_t j = 0; j < s->n_slots; j++)
			if (ipaddr_eq(&l->slots[s->slots[j]].addr, addr))
				return 1;
		if (s->sorry_slot != LBD_NO_SLOT && ipaddr_eq(&l->slots[s->sorry_slot].addr, addr))
			return 1;
	}
	return 0;
}

struct lbd_service *dp_lookup_service(struct lbd *l, const struct ipaddr *vip, uint8_t proto, uint16_t port)
{
	for (size_t i = 0; i < l->n_services; i++) {
		struct lbd_service *s = &l->services[i];
		if (s->port == port && s->proto == proto && ipaddr_eq(&s->vip, vip))
			return s;
	}
	return NULL;
}

struct lbd_service *dp_only_service(struct lbd *l, const struct ipaddr *vip, uint8_t proto)
{
	struct lbd_service *found = NULL;

	for (size_t i = 0; i < l->n_services; i++) {
		struct lbd_service *s = &l->services[i];
		if ((proto == DP_ANY_PROTO || s->proto == proto) && ipaddr_eq(&s->vip, vip)) {
			if (found)
				return NULL;
			found = s;
		}
	}
	return found;
}

int dp_table_init(struct dp_table *t, struct flow_table *flows)
{
	t->flows = flows;
	t->slot_fwd = calloc(LBD_MAX_SLOTS, sizeof(*t->slot_fwd));
	t->slot_bytes = calloc(LBD_MAX_SLOTS, sizeof(*t->slot_bytes));
	t->slot_flows = calloc(LBD_MAX_SLOTS, sizeof(*t->slot_flows));
	if (!flows || !t->slot_fwd || !t->slot_bytes || !t->slot_flows) {
		dp_table_fini(t);
		return -1;
	}
	return 0;
}

/* The flow table stays: it is its worker's. */
void dp_table_fini(struct dp_table *t)
{
	free(t->slot_fwd);
	free(t->slot_bytes);
	free(t->slot_flows);
	memset(t, 0, sizeof(*t));
}

struct flow *dp_flow_insert(struct dp_table *t, const struct flow_key *k, uint16_t slot, uint8_t state,
			    uint64_t now)
{
	struct flow *f = flow_insert(t->flows, k, slot, state, now);

	if (f)
		t->slot_flows[slot]++;
	return f;
}

void dp_flow_assign(struct dp_table *t, struct flow *f, uint16_t slot)
{
	dp_flow_gone(t, f);
	f->backend = slot;
	t->slot_flows[slot]++;
}

void dp_flow_gone(struct dp_table *t, const struct flow *f)
{
	if (f->backend < LBD_MAX_SLOTS)
		t->slot_flows[f->backend]--;
}

void dp_flow_delete(struct dp_table *t, struct flow *f)
{
	dp_flow_gone(t, f);
	flow_delete(t->flows, f);
}

void dp_write_lock(struct lbd *l)
{
	pthread_rwlock_wrlock(&l->dp_lock);
}

void dp_write_unlock(struct lbd *l)
{
	pthread_rwlock_unlock(&l->dp_lock);
}

/* A slot taken by a new backend starts with clean per-worker counters (dp_lock held for writing). */
static void dp_slot_reset_counters(struct lbd *l, uint16_t slot)
{
	for (unsigned i = 0; i < l->n_workers; i++) {
		struct dp_table *t = &l->workers[i].fwd.tab;
		t->slot_fwd[slot] = 0;
		t->slot_bytes[slot] = 0;
		t->slot_flows[slot] = 0;
	}
}

struct lbd_service *dp_find_service(struct lbd *l, const char *name)
{
	for (size_t i = 0; i < l->n_services; i++)
		if (strcmp(l->services[i].name, name) == 0)
			return &l->services[i];
	return NULL;
}

struct lbd_backend *dp_find_backend(struct lbd *l, struct lbd_service *s, const struct ipaddr *addr)
{
	for (size_t i = 0; i < s->n_slots; i++)
		if (ipaddr_eq(&l->slots[s->slots[i]].addr, addr))
			return &l->slots[s->slots[i]];
	return NULL;
}

/* A backend's identity in Maglev: its IPv4 address as always (network order), or for IPv6 a fixed
 * 32-bit fold of the address that every node computes alike. */
static uint32_t dp_maglev_id(const struct ipaddr *a)
{
	if (ipaddr_is_v4(a))
		return ipaddr_v4(a);
	uint32_t h = 0x811c9dc5u;               /* FNV-1a over the 16 bytes */
	for (int i = 0; i < 16; i++)
		h = (h ^ a->b[i]) * 0x01000193u;
	return h;
}

/* Builds the Maglev table from the usable backends. Identity is the backend address, so both nodes
 * of a pair build the same table from the same set. */
void dp_rebuild_service(struct lbd *l, struct lbd_service *s)
{
	uint32_t ids[CFG_MAX_BACKENDS], weights[CFG_MAX_BACKENDS];
	uint16_t slots[CFG_MAX_BACKENDS];
	size_t n = 0;

	for (size_t i = 0; i < s->n_slots; i++) {
		struct lbd_backend *b = &l->slots[s->slots[i]];
		if (!dp_backend_usable(b))
			continue;
		ids[n] = dp_maglev_id(&b->addr);
		weights[n] = b->weight;
		slots[n] = s->slots[i];
		n++;
	}
	/* The old table stays in force if the new one cannot be built. */
	if (maglev_build(s->mg, ids, weights, n) < 0) {
		log_err("%s: service %s: cannot build the lookup table", __func__, s->name);
		return;
	}
	memcpy(s->mg_slots, slots, n * sizeof(slots[0]));
	s->n_usable = n;
	l->ctr.maglev_rebuilds++;
}

void dp_rebuild_all(struct lbd *l)
{
	for (size_t i = 0; i < l->n_services; i++)
		dp_rebuild_service(l, &l->services[i]);
}

static uint16_t dp_slot_alloc(struct lbd *l)
{
	/* Round-robin, so a freed slot is reused as late as possible. */
	for (unsigned n = 0; n < LBD_MAX_SLOTS; n++) {
		uint16_t i = (uint16_t)((l->next_slot + n) % LBD_MAX_SLOTS);
		if (ipaddr_is_none(&l->slots[i].addr)) {
			l->next_slot = (uint16_t)((i + 1) % LBD_MAX_SLOTS);
			return i;
		}
	}
	return LBD_NO_SLOT;
}

/* Finds the slot this backend had under the old config: same service name, same address. */
static uint16_t dp_old_slot(struct lbd *l, const struct lbd_service *old, size_t n_old, const char *svc,
			    const struct ipaddr *addr)
{
	for (size_t i = 0; i < n_old; i++) {
		if (strcmp(old[i].name, svc) != 0)
			continue;
		for (size_t j = 0; j < old[i].n_slots; j++)
			if (ipaddr_eq(&l->slots[old[i].slots[j]].addr, addr))
				return old[i].slots[j];
	}
	return LBD_NO_SLOT;
}

/* Called with dp_lock held for writing, or before the workers start: no worker is inside a batch, so
 * their tables are changed here without their locks (the main thread, the only other user, is us). */
int dp_apply_config(struct lbd *l, struct cfg *cfg)
{
	struct lbd_service *old = l->dp_old;
	uint8_t *keep = l->dp_keep;
	size_t n_old = l->n_services;
	struct maglev *mgs[CFG_MAX_SERVICES];

	/* Allocate every Maglev table first, so a failure leaves the old config untouched. */
	for (size_t i = 0; i < cfg->n_services; i++) {
		mgs[i] = i < n_old ? l->services[i].mg : maglev_create(MAGLEV_SIZE_DEFAULT);
		if (!mgs[i]) {
			for (size_t j = n_old; j < i; j++)
				maglev_destroy(mgs[j]);
			log_err("%s: out of memory for lookup tables", __func__);
			return -1;
		}
	}
	memcpy(old, l->services, sizeof(l->dp_old));
	memset(keep, 0, sizeof(l->dp_keep));
	l->n_vips = 0;
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct cfg_service *cs = &cfg->services[i];
		struct lbd_service *s = &l->services[i];

		memset(s, 0, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%s", cs->name);
		s->vip = cs->vip;
		s->port = htons(cs->port);
		s->proto = cs->proto;
		s->on_down = cs->on_backend_down;
		s->persist = cs->persistence == CFG_PERSIST_CLIENT;
		s->mg = mgs[i];
		s->sorry_slot = LBD_NO_SLOT;
		for (size_t k = 0; k <= cs->n_backends; k++) {
			const struct ipaddr *addr = k < cs->n_backends ? &cs->backends[k].addr : &cs->sorry_backend;
			uint16_t slot;
			if (ipaddr_is_none(addr))
				continue;
			slot = dp_old_slot(l, old, n_old, cs->name, addr);
			if (slot == LBD_NO_SLOT || keep[slot]) {
				slot = dp_slot_alloc(l);
				if (slot == LBD_NO_SLOT) {
					log_err("%s: out of backend slots", __func__);
					continue;
				}
				memset(&l->slots[slot], 0, sizeof(l->slots[slot]));
				l->slots[slot].addr = *addr;
				l->slots[slot].healthy = 1;
				dp_slot_reset_counters(l, slot);
			}
			keep[slot] = 1;
			l->slots[slot].service = (uint16_t)i;
			if (k < cs->n_backends) {
				l->slots[slot].weight = cs->backends[k].weight;
				s->slots[s->n_slots++] = slot;
			} else {
				l->slots[slot].weight = 1;
				s->sorry_slot = slot;
			}
		}
		if (!dp_is_vip(l, &s->vip))
			l->vips[l->n_vips++] = s->vip;
	}
	for (size_t j = cfg->n_services; j < n_old; j++)
		maglev_destroy(old[j].mg);
	l->n_services = cfg->n_services;
	/* Slots no service uses any more are freed; their flows go too. */
	int freed = 0;
	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++) {
		if (!ipaddr_is_none(&l->slots[i].addr) && !keep[i]) {
			memset(&l->slots[i], 0, sizeof(l->slots[i]));
			freed = 1;
		}
	}
	for (unsigned i = 0; freed && i < l->n_workers; i++) {
		struct dp_table *t = &l->workers[i].fwd.tab;
		uint32_t cursor = 0;
		struct flow *f;
		while ((f = flow_next(t->flows, &cursor)))
			if (f->backend < LBD_MAX_SLOTS && ipaddr_is_none(&l->slots[f->backend].addr))
				dp_flow_delete(t, f);
	}
	l->timeouts.tcp_syn_ms = cfg->tcp_syn_ms;
	l->timeouts.tcp_est_ms = cfg->tcp_established_ms;
	l->timeouts.tcp_fin_ms = cfg->tcp_fin_ms;
	l->timeouts.udp_ms = cfg->udp_ms;
	l->timeouts.other_ms = cfg->udp_ms;
	l->timeouts.persist_ms = cfg->persistence_ms;
	if (l->cfg != cfg)
		cfg_free(l->cfg);
	l->cfg = cfg;
	dp_rebuild_all(l);
	return 0;
}
