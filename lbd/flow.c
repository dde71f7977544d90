/* The per-worker connection table: a pool of fixed-size entries allocated once, chained from a power-of-two
 * array of 32-bit heads by 32-bit indices, with free entries on a free list through the same link. An entry is
 * the caller's struct flow, its chain hash and link, then the key in the table's compact form: 32 bytes in an
 * IPv4-only table (36.2 bytes per flow at one million flows), 56 bytes when it also takes IPv6 keys (60.2),
 * which then stores IPv4 keys in the IPv6 form too.
 * Also the 5-tuple hash and client-side TCP state tracking. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
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
#define FLOW_SEED6      0x666c6f772d367636ull

/* The stored key. IPv4 keys keep only the low words of their mapped addresses; the bytes after `proto` are
 * always zero, so two keys are equal exactly when their bytes are. */
struct flow_key4 {
	uint32_t saddr, daddr;
	uint16_t sport, dport;
	uint8_t proto, pad[3];
};

struct flow_key6 {
	uint8_t saddr[16], daddr[16];
	uint16_t sport, dport;
	uint8_t proto, pad[3];
};

struct flow_entry {
	struct flow f;                  /* first, so a struct flow * converts back to its entry */
	uint32_t hash;                  /* its chain hash (flow_chain_hash): picks its chain, speeds compares */
	uint32_t next;                  /* next in chain or free list, FLOW_NIL at the end; FLOW_FREE if free */
	/* then the key: struct flow_key4 or, in a table that takes IPv6, struct flow_key6 */
};

_Static_assert(sizeof(struct flow) == 8, "struct flow grew");
_Static_assert(sizeof(struct flow_entry) + sizeof(struct flow_key4) == 32, "two IPv4 entries per cache line");
_Static_assert(sizeof(struct flow_entry) + sizeof(struct flow_key6) == 56, "IPv6 entries of 56 bytes");
_Static_assert(FLOW_MAX_LIMIT < FLOW_NIL, "indices must stay below FLOW_NIL");

struct flow_table {
	uint8_t *pool;                  /* max entries of esz bytes */
	uint32_t *head;                 /* chain heads, mask + 1 of them */
	uint32_t esz;                   /* bytes per entry */
	uint32_t ipv6;
	uint32_t mask;
	uint32_t max;
	uint32_t count;
	uint32_t free_head;
	uint32_t expire_cursor;
	uint8_t key[crypto_shorthash_KEYBYTES]; /* random per table: chain choice no outsider can predict */
};

static inline struct flow_entry *flow_entry_at(const struct flow_table *t, uint32_t i)
{
	return (struct flow_entry *)(t->pool + (size_t)i * t->esz);
}

static inline uint8_t *flow_entry_key(struct flow_entry *e)
{
	return (uint8_t *)(e + 1);
}

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

static inline uint64_t flow_get64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* The fields go in host order so that hosts of either byte order agree. Mixing the ports and protocol into an
 * already mixed address word keeps flows between the same two hosts collision-free (mix is a bijection).
 * IPv4 keys hash as they always have; IPv6 keys chain the four 64-bit halves of their addresses. */
static uint64_t flow_hash_addr_words(const struct ipaddr *s, const struct ipaddr *d, uint64_t seed, uint64_t seed6)
{
	if (ipaddr_is_v4(s))
		return flow_mix((uint64_t)ntohl(ipaddr_v4(s)) << 32 ^ ntohl(ipaddr_v4(d)) ^ seed);
	uint64_t h = flow_mix(flow_get64(s->b) ^ seed6);
	h = flow_mix(h ^ flow_get64(s->b + 8));
	h = flow_mix(h ^ flow_get64(d->b));
	return flow_mix(h ^ flow_get64(d->b + 8));
}

uint32_t flow_hash(const struct flow_key *k)
{
	uint64_t b = (uint64_t)ntohs(k->sport) << 24 | (uint64_t)ntohs(k->dport) << 8 | k->proto;
	uint64_t h = flow_mix(flow_hash_addr_words(&k->saddr, &k->daddr, FLOW_SEED, FLOW_SEED6) ^ b);

	return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

uint32_t flow_hash_addrs(const struct ipaddr *saddr, const struct ipaddr *daddr, uint8_t proto)
{
	uint64_t h = flow_mix(flow_hash_addr_words(saddr, daddr, FLOW_SEED_ADDRS, FLOW_SEED_ADDRS ^ FLOW_SEED6) ^ proto);

	return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

/* The key in stored form: an IPv4-only table packs IPv4 keys into 16 bytes and holds no IPv6 key (0); a table
 * that takes IPv6 stores every key in the 40-byte form, IPv4 ones with their mapped addresses, so a stored
 * key's bytes alone say what it is. */
static inline size_t flow_key_pack(const struct flow_table *t, const struct flow_key *k, uint8_t *out)
{
	if (!t->ipv6) {
		if (!ipaddr_is_v4(&k->saddr))
			return 0;
		struct flow_key4 c = { .saddr = ipaddr_v4(&k->saddr), .daddr = ipaddr_v4(&k->daddr),
				       .sport = k->sport, .dport = k->dport, .proto = k->proto };
		memcpy(out, &c, sizeof(c));
		return sizeof(c);
	}
	struct flow_key6 c = { .sport = k->sport, .dport = k->dport, .proto = k->proto };
	memcpy(c.saddr, k->saddr.b, 16);
	memcpy(c.daddr, k->daddr.b, 16);
	memcpy(out, &c, sizeof(c));
	return sizeof(c);
}

/* SipHash-2-4 of the key under the table's secret: of its 16-byte IPv4 form for an IPv4 key (in either
 * table: a dual-stack table hashes IPv4 keys no slower than an IPv4-only one), of the 40-byte form for an
 * IPv6 key. Only the chain depends on it; equality is decided on the stored bytes. A 2^20-chain table
 * indexed by the public flow_hash let 20 000 tuples found in 42 s share one chain (a lookup 164 times
 * slower). */
static inline uint32_t flow_chain_hash(const struct flow_table *t, const struct flow_key *k, const uint8_t *packed,
				       size_t len)
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t h;

	if (len == sizeof(struct flow_key6) && ipaddr_is_v4(&k->saddr)) {
		struct flow_key4 c = { .saddr = ipaddr_v4(&k->saddr), .daddr = ipaddr_v4(&k->daddr),
				       .sport = k->sport, .dport = k->dport, .proto = k->proto };
		crypto_shorthash(out, (const uint8_t *)&c, sizeof(c), t->key);
	} else {
		crypto_shorthash(out, packed, len, t->key);
	}
	memcpy(&h, out, sizeof(h));
	return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

uint32_t flow_chain(const struct flow_table *t, const struct flow_key *k)
{
	uint8_t packed[sizeof(struct flow_key6)];
	size_t len = flow_key_pack(t, k, packed);

	return len ? flow_chain_hash(t, k, packed, len) & t->mask : 0;
}

static inline uint32_t flow_units(uint64_t now_ms)
{
	return (uint32_t)(now_ms >> FLOW_TIME_SHIFT);
}

struct flow_table *flow_create(uint32_t flow_max, int ipv6)
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
	t->ipv6 = !!ipv6;
	t->esz = (uint32_t)(sizeof(struct flow_entry) + (ipv6 ? sizeof(struct flow_key6) : sizeof(struct flow_key4)));
	err = posix_memalign(&p, 64, (size_t)flow_max * t->esz);
	if (err)
		goto fail_t;
	t->pool = p;
	err = posix_memalign(&p, 64, nhead * sizeof(*t->head));
	if (err)
		goto fail_pool;
	t->head = p;

	/* Writing every entry now also faults in every page, so the packet path never does. */
	memset(t->pool, 0, (size_t)flow_max * t->esz);
	for (uint32_t i = 0; i < flow_max; i++)
		flow_entry_at(t, i)->next = (i + 1 < flow_max ? i + 1 : FLOW_NIL) | FLOW_FREE;
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

int flow_ipv6(const struct flow_table *t)
{
	return (int)t->ipv6;
}

static struct flow *flow_find(struct flow_table *t, const uint8_t *packed, size_t len, uint32_t hash)
{
	for (uint32_t i = t->head[hash & t->mask]; i != FLOW_NIL;) {
		struct flow_entry *e = flow_entry_at(t, i);

		if (e->hash == hash && memcmp(flow_entry_key(e), packed, len) == 0)
			return &e->f;
		i = e->next;
	}
	return NULL;
}

struct flow *flow_lookup(struct flow_table *t, const struct flow_key *k)
{
	uint8_t packed[sizeof(struct flow_key6)];
	size_t len = flow_key_pack(t, k, packed);

	return len ? flow_find(t, packed, len, flow_chain_hash(t, k, packed, len)) : NULL;
}

struct flow *flow_insert(struct flow_table *t, const struct flow_key *k, uint16_t backend, uint8_t state,
		uint64_t now_ms)
{
	uint8_t packed[sizeof(struct flow_key6)];
	size_t len = flow_key_pack(t, k, packed);
	uint32_t hash, i;
	struct flow *f;
	struct flow_entry *e;

	if (!len) {
		errno = EAFNOSUPPORT;
		return NULL;
	}
	hash = flow_chain_hash(t, k, packed, len);
	f = flow_find(t, packed, len, hash);
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
	e = flow_entry_at(t, i);
	t->free_head = e->next & ~FLOW_FREE;

	/* Zeroing first keeps the key's padding defined, so whole-entry copies leak nothing. */
	memset(flow_entry_key(e), 0, t->esz - sizeof(*e));
	memcpy(flow_entry_key(e), packed, len);
	memset(&e->f, 0, sizeof(e->f));
	e->f.backend = backend;
	e->f.state = state;
	e->f.last_seen = flow_units(now_ms);
	e->hash = hash;
	e->next = t->head[hash & t->mask];
	t->head[hash & t->mask] = i;
	t->count++;
	return &e->f;
}

void flow_key_of(const struct flow_table *t, const struct flow *f, struct flow_key *k)
{
	const uint8_t *b = (const uint8_t *)((const struct flow_entry *)f + 1);
	size_t ports;

	memset(k, 0, sizeof(*k));
	if (t->ipv6) {
		k->saddr = ipaddr_from_v6(b + offsetof(struct flow_key6, saddr));
		k->daddr = ipaddr_from_v6(b + offsetof(struct flow_key6, daddr));
		ports = offsetof(struct flow_key6, sport);
	} else {
		uint32_t a[2];
		memcpy(a, b, sizeof(a));
		k->saddr = ipaddr_from_v4(a[0]);
		k->daddr = ipaddr_from_v4(a[1]);
		ports = offsetof(struct flow_key4, sport);
	}
	/* sport, dport and proto follow the addresses alike in both forms */
	memcpy(&k->sport, b + ports, 2);
	memcpy(&k->dport, b + ports + 2, 2);
	k->proto = b[ports + 4];
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
	if (off % t->esz != 0 || off / t->esz >= t->max)
		return t->max;
	return (uint32_t)(off / t->esz);
}

void flow_delete(struct flow_table *t, struct flow *f)
{
	uint32_t i = flow_index(t, f), *link;
	struct flow_entry *e;

	if (i == t->max)
		return;
	e = flow_entry_at(t, i);
	if (e->next & FLOW_FREE)
		return;
	for (link = &t->head[e->hash & t->mask]; *link != i; link = &flow_entry_at(t, *link)->next)
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
	return sizeof(*t) + (size_t)t->max * t->esz + ((size_t)t->mask + 1) * sizeof(*t->head);
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
		void (*cb)(void *arg, const struct flow *f, const struct flow_key *k), void *arg)
{
	size_t deleted = 0;
	struct flow_key k;

	if (!to)
		return 0;
	if (max_scan > t->max)
		max_scan = t->max;
	for (size_t n = 0; n < max_scan; n++) {
		struct flow_entry *e = flow_entry_at(t, t->expire_cursor);

		if (++t->expire_cursor == t->max)
			t->expire_cursor = 0;
		if (e->next & FLOW_FREE)
			continue;
		if (flow_idle_ms(t, &e->f, now_ms) <= flow_timeout_ms(to, e->f.state))
			continue;
		if (cb) {
			flow_key_of(t, &e->f, &k);
			cb(arg, &e->f, &k);
		}
		flow_delete(t, &e->f);
		deleted++;
	}
	return deleted;
}

struct flow *flow_next(struct flow_table *t, uint32_t *cursor)
{
	for (uint32_t i = *cursor; i < t->max; i++) {
		struct flow_entry *e = flow_entry_at(t, i);
		if (!(e->next & FLOW_FREE)) {
			*cursor = i + 1;
			return &e->f;
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
