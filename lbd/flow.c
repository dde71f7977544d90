/* The per-worker connection table: a pool of 32-byte entries allocated once, chained from a power-of-two array
 * of 32-bit heads by 32-bit indices, with free entries on a free list through the same link. At one million
 * flows that is 32 + 4.2 bytes per flow. Also the 5-tuple hash and client-side TCP state tracking. */
#include <arpa/inet.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "log.h"

/* Chain links are pool indices below FLOW_MAX_LIMIT. A free entry's link has FLOW_FREE set, so whether a slot
 * is in use never depends on a field that callers may write. */
#define FLOW_NIL  0x7fffffffu
#define FLOW_FREE 0x80000000u

/* Fixed seeds: both nodes must hash a flow, and so pick its backend, identically. The table's chains use a
 * keyed hash instead (flow_chain_hash). */
#define FLOW_SEED       0x666c6f772d357475ull
#define FLOW_SEED_ADDRS 0x666c6f772d616464ull

struct flow_entry {
	struct flow f;                  /* first, so a struct flow * converts back to its entry */
	uint32_t hash;                  /* its chain hash (flow_chain_hash): picks its chain, speeds compares */
	uint32_t next;                  /* next in chain or free list, FLOW_NIL at the end; FLOW_FREE if free */
};

_Static_assert(sizeof(struct flow) == 24, "struct flow grew");
_Static_assert(sizeof(struct flow_entry) == 32, "two entries per cache line");
_Static_assert(FLOW_MAX_LIMIT < FLOW_NIL, "indices must stay below FLOW_NIL");

struct flow_table {
	struct flow_entry *pool;
	uint32_t *head;                 /* chain heads, mask + 1 of them */
	uint32_t mask;
	uint32_t max;
	uint32_t count;
	uint32_t free_head;
	uint32_t expire_cursor;
	uint8_t key[crypto_shorthash_KEYBYTES]; /* random per table: chain choice no outsider can predict */
};

/* splitmix64's finaliser: a bijection with full avalanche. */
static inline uint64_t flow_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* The fields go in host order so that hosts of either byte order agree. Mixing the ports and protocol into an
 * already mixed address word keeps flows between the same two hosts collision-free (mix is a bijection). */
uint32_t flow_hash(const struct flow_key *k)
{
	uint64_t a = (uint64_t)ntohl(k->saddr) << 32 | ntohl(k->daddr);
	uint64_t b = (uint64_t)ntohs(k->sport) << 24 | (uint64_t)ntohs(k->dport) << 8 | k->proto;
	uint64_t h = flow_mix(flow_mix(a ^ FLOW_SEED) ^ b);

	return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

uint32_t flow_hash_addrs(uint32_t saddr, uint32_t daddr, uint8_t proto)
{
	uint64_t a = (uint64_t)ntohl(saddr) << 32 | ntohl(daddr);
	uint64_t h = flow_mix(flow_mix(a ^ FLOW_SEED_ADDRS) ^ proto);

	return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

/* SipHash-2-4 of the 13 bytes of the key under the table's secret. A 2^20-chain table indexed by the public
 * flow_hash let 20 000 tuples found in 42 s share one chain (a lookup 164 times slower). */
static inline uint32_t flow_chain_hash(const struct flow_table *t, const struct flow_key *k)
{
	uint8_t in[13], out[crypto_shorthash_BYTES];
	uint64_t h;

	memcpy(in, &k->saddr, 4);
	memcpy(in + 4, &k->daddr, 4);
	memcpy(in + 8, &k->sport, 2);
	memcpy(in + 10, &k->dport, 2);
	in[12] = k->proto;
	crypto_shorthash(out, in, sizeof(in), t->key);
	memcpy(&h, out, sizeof(h));
	return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

uint32_t flow_chain(const struct flow_table *t, const struct flow_key *k)
{
	return flow_chain_hash(t, k) & t->mask;
}

static inline uint32_t flow_units(uint64_t now_ms)
{
	return (uint32_t)(now_ms >> FLOW_TIME_SHIFT);
}

static inline int flow_key_eq(const struct flow_key *a, const struct flow_key *b)
{
	return a->saddr == b->saddr && a->daddr == b->daddr && a->sport == b->sport && a->dport == b->dport &&
		a->proto == b->proto;
}

struct flow_table *flow_create(uint32_t flow_max)
{
	struct flow_table *t;
	void *p;
	size_t nhead = 1;
	int err;

	if (flow_max == 0 || flow_max > FLOW_MAX_LIMIT) {
		errno = EINVAL;
		return NULL;
	}
	while (nhead < flow_max)
		nhead <<= 1;

	if (sodium_init() < 0) {
		err = EIO;
		goto fail;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		err = ENOMEM;
		goto fail;
	}
	crypto_shorthash_keygen(t->key);
	err = posix_memalign(&p, 64, (size_t)flow_max * sizeof(*t->pool));
	if (err)
		goto fail_t;
	t->pool = p;
	err = posix_memalign(&p, 64, nhead * sizeof(*t->head));
	if (err)
		goto fail_pool;
	t->head = p;

	/* Writing every entry now also faults in every page, so the packet path never does. */
	memset(t->pool, 0, (size_t)flow_max * sizeof(*t->pool));
	for (uint32_t i = 0; i < flow_max; i++)
		t->pool[i].next = (i + 1 < flow_max ? i + 1 : FLOW_NIL) | FLOW_FREE;
	for (size_t i = 0; i < nhead; i++)
		t->head[i] = FLOW_NIL;
	t->mask = (uint32_t)(nhead - 1);
	t->max = flow_max;
	t->free_head = 0;
	return t;

fail_pool:
	free(t->pool);
fail_t:
	free(t);
fail:
	log_err("%s: %u flows: %s", __func__, flow_max, strerror(err));
	errno = err;
	return NULL;
}

void flow_destroy(struct flow_table *t)
{
	if (!t)
		return;
	sodium_memzero(t->key, sizeof(t->key));
	free(t->head);
	free(t->pool);
	free(t);
}

static struct flow *flow_find(struct flow_table *t, const struct flow_key *k, uint32_t hash)
{
	for (uint32_t i = t->head[hash & t->mask]; i != FLOW_NIL; i = t->pool[i].next) {
		struct flow_entry *e = &t->pool[i];

		if (e->hash == hash && flow_key_eq(&e->f.key, k))
			return &e->f;
	}
	return NULL;
}

struct flow *flow_lookup(struct flow_table *t, const struct flow_key *k)
{
	return flow_find(t, k, flow_chain_hash(t, k));
}

struct flow *flow_insert(struct flow_table *t, const struct flow_key *k, uint16_t backend, uint8_t state,
		uint64_t now_ms)
{
	uint32_t hash = flow_chain_hash(t, k);
	struct flow *f = flow_find(t, k, hash);
	struct flow_entry *e;
	uint32_t i;

	if (f) {
		f->backend = backend;
		f->state = state;
		f->last_seen = flow_units(now_ms);
		return f;
	}
	if (t->free_head == FLOW_NIL) {
		errno = ENOSPC;
		return NULL;
	}
	i = t->free_head;
	e = &t->pool[i];
	t->free_head = e->next & ~FLOW_FREE;

	/* Zeroing first keeps the key's padding defined, so whole-struct copies (e.g. for sync) leak nothing. */
	memset(&e->f, 0, sizeof(e->f));
	e->f.key.saddr = k->saddr;
	e->f.key.daddr = k->daddr;
	e->f.key.sport = k->sport;
	e->f.key.dport = k->dport;
	e->f.key.proto = k->proto;
	e->f.backend = backend;
	e->f.state = state;
	e->f.last_seen = flow_units(now_ms);
	e->hash = hash;
	e->next = t->head[hash & t->mask];
	t->head[hash & t->mask] = i;
	t->count++;
	return &e->f;
}

void flow_touch(struct flow_table *t, struct flow *f, uint64_t now_ms)
{
	f->last_seen = flow_units(now_ms);
}

void flow_set_idle(struct flow_table *t, struct flow *f, uint64_t now_ms, uint32_t idle_ms)
{
	f->last_seen = flow_units(now_ms) - (idle_ms >> FLOW_TIME_SHIFT);
}

/* The pool index of f, or t->max when f is not an entry of this table. Integer arithmetic, because comparing
 * pointers into different objects is undefined. */
static uint32_t flow_index(const struct flow_table *t, const struct flow *f)
{
	uintptr_t base = (uintptr_t)t->pool, p = (uintptr_t)f;

	size_t off;

	if (p < base)
		return t->max;
	off = p - base;
	if (off % sizeof(struct flow_entry) != 0 || off / sizeof(struct flow_entry) >= t->max)
		return t->max;
	return (uint32_t)(off / sizeof(struct flow_entry));
}

void flow_delete(struct flow_table *t, struct flow *f)
{
	uint32_t i = flow_index(t, f), *link;
	struct flow_entry *e;

	if (i == t->max)
		return;
	e = &t->pool[i];
	if (e->next & FLOW_FREE)
		return;
	for (link = &t->head[e->hash & t->mask]; *link != i; link = &t->pool[*link].next)
		if (*link == FLOW_NIL)
			return;         /* not on its chain: cannot happen unless memory was overwritten */
	*link = e->next;
	e->next = t->free_head | FLOW_FREE;
	t->free_head = i;
	t->count--;
}

uint32_t flow_count(const struct flow_table *t)
{
	return t->count;
}

uint32_t flow_max(const struct flow_table *t)
{
	return t->max;
}

size_t flow_mem_bytes(const struct flow_table *t)
{
	return sizeof(*t) + (size_t)t->max * sizeof(*t->pool) + ((size_t)t->mask + 1) * sizeof(*t->head);
}

size_t flow_bytes_per_flow(const struct flow_table *t)
{
	return (flow_mem_bytes(t) + t->max - 1) / t->max;
}

static uint32_t flow_idle_units(uint32_t last_seen, uint32_t now_units)
{
	uint32_t d = now_units - last_seen;

	return d < 0x80000000u ? d : 0;
}

uint32_t flow_idle_ms(const struct flow_table *t, const struct flow *f, uint64_t now_ms)
{
	uint64_t ms = (uint64_t)flow_idle_units(f->last_seen, flow_units(now_ms)) << FLOW_TIME_SHIFT;

	return ms < UINT32_MAX ? (uint32_t)ms : UINT32_MAX;
}

uint32_t flow_timeout_ms(const struct flow_timeouts *to, uint8_t state)
{
	switch (state) {
	case FLOW_TCP_SYN:
		return to->tcp_syn_ms;
	case FLOW_TCP_EST:
		return to->tcp_est_ms;
	case FLOW_TCP_FIN:
	case FLOW_TCP_CLOSED:
		return to->tcp_fin_ms;
	case FLOW_UDP:
		return to->udp_ms;
	case FLOW_PERSIST:
		return to->persist_ms;
	default:
		return to->other_ms;
	}
}

size_t flow_expire(struct flow_table *t, uint64_t now_ms, const struct flow_timeouts *to, size_t max_scan,
		void (*cb)(void *arg, const struct flow *f), void *arg)
{
	size_t deleted = 0;

	if (!to)
		return 0;
	if (max_scan > t->max)
		max_scan = t->max;
	for (size_t n = 0; n < max_scan; n++) {
		struct flow_entry *e = &t->pool[t->expire_cursor];

		if (++t->expire_cursor == t->max)
			t->expire_cursor = 0;
		if (e->next & FLOW_FREE)
			continue;
		if (flow_idle_ms(t, &e->f, now_ms) <= flow_timeout_ms(to, e->f.state))
			continue;
		if (cb)
			cb(arg, &e->f);
		flow_delete(t, &e->f);
		deleted++;
	}
	return deleted;
}

struct flow *flow_next(struct flow_table *t, uint32_t *cursor)
{
	for (uint32_t i = *cursor; i < t->max; i++) {
		if (!(t->pool[i].next & FLOW_FREE)) {
			*cursor = i + 1;
			return &t->pool[i].f;
		}
	}
	*cursor = t->max;
	return NULL;
}

enum flow_state flow_tcp_next(enum flow_state cur, uint8_t tcp_flags, int *new_connection)
{
	uint8_t f = tcp_flags & (FLOW_TH_FIN | FLOW_TH_SYN | FLOW_TH_RST | FLOW_TH_ACK);

	if (new_connection)
		*new_connection = 0;
	if (cur != FLOW_TCP_SYN && cur != FLOW_TCP_EST && cur != FLOW_TCP_FIN && cur != FLOW_TCP_CLOSED)
		cur = FLOW_TCP_CLOSED;

	if (f & FLOW_TH_SYN) {
		if (f != FLOW_TH_SYN)
			return cur;     /* SYN with FIN, RST or ACK: not a client opening a connection */
		if (cur == FLOW_TCP_FIN || cur == FLOW_TCP_CLOSED) {
			if (new_connection)
				*new_connection = 1;
			return FLOW_TCP_SYN;
		}
		return cur;             /* a retransmitted SYN */
	}
	if (f & FLOW_TH_RST)
		return FLOW_TCP_CLOSED;
	if (f & FLOW_TH_FIN)
		return cur == FLOW_TCP_CLOSED ? FLOW_TCP_CLOSED : FLOW_TCP_FIN;
	if ((f & FLOW_TH_ACK) && cur == FLOW_TCP_SYN)
		return FLOW_TCP_EST;
	return cur;
}

const char *flow_state_name(uint8_t state)
{
	static const char *const name[] = {
		[FLOW_TCP_SYN] = "SYN", [FLOW_TCP_EST] = "EST", [FLOW_TCP_FIN] = "FIN",
		[FLOW_TCP_CLOSED] = "CLOSED", [FLOW_UDP] = "UDP", [FLOW_OTHER] = "OTHER",
		[FLOW_PERSIST] = "PERSIST",
	};

	return state < sizeof(name) / sizeof(name[0]) ? name[state] : "?";
}
