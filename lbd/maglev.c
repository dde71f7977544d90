/* Maglev lookup-table population (NSDI 2016 section 3.4) with weights. Weights become turns per round, as in
 * Linux ip_vs_mh.c, and each backend also gets an exact quota of entries, so the table follows the weights to
 * within one entry however coarse the rounds are. Building never allocates; lookup is one modulo and a load. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "maglev.h"

/* A round hands out at most about size/64 entries, so every backend's preferences are interleaved with the
 * others' at least 64 times over the table; that is what keeps the disruption of a change small. */
#define MAGLEV_ROUNDS_MIN 64u

/* Fixed seeds: every node must derive the same permutation from the same backend id. */
#define MAGLEV_SEED_OFFSET 0x6d61676c65762d6full
#define MAGLEV_SEED_SKIP   0x736b69702d6d6c76ull

struct maglev_slot {
	uint32_t pos;           /* next preferred position to try */
	uint32_t skip;          /* step through the permutation, 1..size-1: size is prime, so it visits every entry */
	uint32_t quota;         /* entries this backend still has to take */
	uint32_t turns;         /* entries taken per round */
	uint16_t idx;           /* index into the caller's arrays */
};

struct maglev {
	uint32_t size;
	uint16_t *table;
	uint16_t *order;                /* scratch: caller indices sorted by id */
	struct maglev_slot *slot;       /* scratch: backends with weight > 0, in id order */
};

static int maglev_is_prime(uint32_t n)
{
	if (n < 2)
		return 0;
	if (n % 2 == 0)
		return n == 2;
	for (uint32_t d = 3; (uint64_t)d * d <= n; d += 2)
		if (n % d == 0)
			return 0;
	return 1;
}

/* splitmix64's finaliser: a bijection with full avalanche, so neighbouring addresses get unrelated
 * permutations. The id goes in host order so that hosts of either byte order agree. */
static uint64_t maglev_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static uint32_t maglev_gcd(uint32_t a, uint32_t b)
{
	while (b) {
		uint32_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static void maglev_sift(uint16_t *o, const uint32_t *ids, size_t root, size_t end)
{
	for (;;) {
		size_t child = 2 * root + 1;

		if (child >= end)
			return;
		if (child + 1 < end && ids[o[child + 1]] > ids[o[child]])
			child++;
		if (ids[o[root]] >= ids[o[child]])
			return;
		uint16_t t = o[root];
		o[root] = o[child];
		o[child] = t;
		root = child;
	}
}

/* Heapsort of the indices by id: in place, and unlike qsort guaranteed not to allocate. */
static void maglev_sort(uint16_t *o, const uint32_t *ids, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		maglev_sift(o, ids, i, n);
	for (size_t end = n; end > 1; end--) {
		uint16_t t = o[0];
		o[0] = o[end - 1];
		o[end - 1] = t;
		maglev_sift(o, ids, 0, end - 1);
	}
}

static void maglev_clear(struct maglev *m)
{
	for (uint32_t i = 0; i < m->size; i++)
		m->table[i] = MAGLEV_NONE;
}

struct maglev *maglev_create(uint32_t size)
{
	struct maglev *m;

	if (size < MAGLEV_SIZE_DEFAULT || size > MAGLEV_SIZE_MAX || !maglev_is_prime(size)) {
		errno = EINVAL;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		goto fail;
	m->size = size;
	m->table = malloc((size_t)size * sizeof(*m->table));
	if (!m->table)
		goto fail_m;
	m->order = malloc(MAGLEV_MAX_BACKENDS * sizeof(*m->order));
	if (!m->order)
		goto fail_table;
	m->slot = malloc(MAGLEV_MAX_BACKENDS * sizeof(*m->slot));
	if (!m->slot)
		goto fail_order;
	maglev_clear(m);
	return m;

fail_order:
	free(m->order);
fail_table:
	free(m->table);
fail_m:
	free(m);
fail:
	log_err("%s: %u entries: out of memory", __func__, size);
	errno = ENOMEM;
	return NULL;
}

void maglev_destroy(struct maglev *m)
{
	if (!m)
		return;
	free(m->slot);
	free(m->order);
	free(m->table);
	free(m);
}

/* Checks the arguments and sorts the indices by id; touches nothing but scratch. */
static int maglev_prepare(struct maglev *m, const uint32_t *ids, const uint32_t *weights, size_t n)
{
	if (!m || n > MAGLEV_MAX_BACKENDS || (n > 0 && (!ids || !weights)))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (weights[i] > 0xffff)
			return -1;
		m->order[i] = (uint16_t)i;
	}
	maglev_sort(m->order, ids, n);
	for (size_t i = 1; i < n; i++)
		if (ids[m->order[i]] == ids[m->order[i - 1]])
			return -1;
	return 0;
}

/* Fills m->slot with the backends of weight > 0 in id order, with their quotas, turns and permutations.
 * Quotas come from rounding the cumulative share, so they sum to exactly size and each is within one entry
 * of size * weight / total. Returns how many backends are active. */
static size_t maglev_plan(struct maglev *m, const uint32_t *ids, const uint32_t *weights, size_t n)
{
	uint32_t g = 0;
	uint64_t total = 0, cum = 0, prev = 0;
	uint64_t round_max = m->size / MAGLEV_ROUNDS_MIN;
	size_t active = 0;

	for (size_t i = 0; i < n; i++)
		g = maglev_gcd(g, weights[i]);
	if (g == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		total += weights[i] / g;

	for (size_t i = 0; i < n; i++) {
		uint16_t idx = m->order[i];
		uint64_t w = weights[idx] / g, end;
		struct maglev_slot *s;
		uint32_t id;

		if (w == 0)
			continue;
		s = &m->slot[active++];
		s->idx = idx;
		cum += w;
		end = (uint64_t)m->size * cum / total;
		s->quota = (uint32_t)(end - prev);
		prev = end;
		if (total <= round_max) {
			s->turns = (uint32_t)w;
		} else {
			s->turns = (uint32_t)(w * round_max / total);
			if (s->turns == 0)
				s->turns = 1;
		}
		id = ntohl(ids[idx]);
		s->pos = (uint32_t)(maglev_mix(id ^ MAGLEV_SEED_OFFSET) % m->size);
		s->skip = (uint32_t)(maglev_mix(id ^ MAGLEV_SEED_SKIP) % (m->size - 1)) + 1;
	}
	return active;
}

int maglev_build(struct maglev *m, const uint32_t *ids, const uint32_t *weights, size_t n)
{
	uint32_t filled = 0;
	size_t active;

	if (maglev_prepare(m, ids, weights, n) < 0) {
		errno = EINVAL;
		return -1;
	}
	active = maglev_plan(m, ids, weights, n);
	maglev_clear(m);
	if (active == 0)
		return 0;

	/* The paper's population loop: each backend in turn takes its next preferred entry that is still free.
	 * The quotas sum to size, so while the table has a free entry some backend still has quota, and that
	 * backend's permutation reaches the free entry: the loop ends exactly when the table is full. */
	while (filled < m->size) {
		for (size_t i = 0; i < active; i++) {
			struct maglev_slot *s = &m->slot[i];

			for (uint32_t t = 0; t < s->turns && s->quota > 0; t++) {
				while (m->table[s->pos] != MAGLEV_NONE) {
					s->pos += s->skip;
					if (s->pos >= m->size)
						s->pos -= m->size;
				}
				m->table[s->pos] = s->idx;
				s->quota--;
				filled++;
			}
		}
	}
	return 0;
}

uint16_t maglev_lookup(const struct maglev *m, uint32_t hash)
{
	return m->table[hash % m->size];
}

uint32_t maglev_size(const struct maglev *m)
{
	return m->size;
}
