/* Which service the fragments of one IPv4 or IPv6 datagram belong to. Only the first fragment carries the ports
 * that name the service; the later ones carry only addresses, protocol and the datagram's IP ID. Each
 * worker remembers, for a bounded time, the service its first fragments went to, so the later ones
 * follow them even when several services share a VIP and protocol. All fragments of a datagram reach
 * the same worker: the fanout program hashes fragments on addresses only (filter.c). */
#ifndef DSR_FRAG_H
#define DSR_FRAG_H

#include <stdint.h>

#include "ipaddr.h"

#define FRAG_SLOTS 1024              /* per worker, direct-mapped: 56 KiB */
#define FRAG_TTL_MS 30000            /* as long as Linux keeps fragments for reassembly (ipfrag_time) */
#define FRAG_NONE 0xffffu

struct frag_key {
	struct ipaddr saddr, daddr;
	uint32_t id;                    /* IPv4 identification or IPv6 fragment id, network order */
	uint8_t proto;
};

struct frag_entry {
	struct frag_key key;
	uint16_t service;               /* FRAG_NONE: unused */
	uint64_t expires_ms;
};

struct frag_table {
	uint8_t secret[16];             /* keys the slot index, so senders cannot aim at each other's slots */
	struct frag_entry e[FRAG_SLOTS];
};

void frag_init(struct frag_table *t);
/* The first fragment of a datagram went to `service`. A newer datagram in the same slot replaces it. */
void frag_remember(struct frag_table *t, const struct frag_key *k, uint16_t service, uint64_t now_ms);
/* The service of the datagram's first fragment, or FRAG_NONE when it was not seen (yet) or expired. */
uint16_t frag_recall(const struct frag_table *t, const struct frag_key *k, uint64_t now_ms);

#endif
