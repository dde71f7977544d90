/* Fragment memory of a worker: see frag.h. No allocation; one keyed hash per fragment. */
#include <sodium.h>
#include <string.h>

#include "frag.h"

void frag_init(struct frag_table *t)
{
	randombytes_buf(t->secret, sizeof(t->secret));
	for (size_t i = 0; i < FRAG_SLOTS; i++)
		t->e[i].service = FRAG_NONE;
}

static size_t frag_slot(const struct frag_table *t, const struct frag_key *k)
{
	uint8_t in[37], out[crypto_shorthash_BYTES];
	uint64_t h;

	memcpy(in, k->saddr.b, 16);
	memcpy(in + 16, k->daddr.b, 16);
	memcpy(in + 32, &k->id, 4);
	in[36] = k->proto;
	crypto_shorthash(out, in, sizeof(in), t->secret);
	memcpy(&h, out, sizeof(h));
	return (size_t)(h % FRAG_SLOTS);
}

static int frag_same(const struct frag_key *a, const struct frag_key *b)
{
	return ipaddr_eq(&a->saddr, &b->saddr) && ipaddr_eq(&a->daddr, &b->daddr) && a->id == b->id &&
	       a->proto == b->proto;
}

void frag_remember(struct frag_table *t, const struct frag_key *k, uint16_t service, uint64_t now_ms)
{
	struct frag_entry *e = &t->e[frag_slot(t, k)];

	e->key = *k;
	e->service = service;
	e->expires_ms = now_ms + FRAG_TTL_MS;
}

uint16_t frag_recall(const struct frag_table *t, const struct frag_key *k, uint64_t now_ms)
{
	const struct frag_entry *e = &t->e[frag_slot(t, k)];

	if (e->service == FRAG_NONE || now_ms >= e->expires_ms || !frag_same(&e->key, k))
		return FRAG_NONE;
	return e->service;
}
