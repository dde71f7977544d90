/* The connection table: one per forwarding worker, single-threaded, no locks. A fixed pool of flows allocated
 * at create and a power-of-two array of chain heads; lookup, insert and delete never allocate.
 * Also the 5-tuple hash (shared with Maglev) and the client-side TCP state tracking used for timeouts. */
#ifndef DSR_FLOW_H
#define DSR_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "ipaddr.h"

#define FLOW_MAX_LIMIT (1u << 28)       /* largest flow_max accepted by flow_create */
#define FLOW_TIME_SHIFT 4               /* last_seen counts units of 1 << 4 = 16 ms */

/* Addresses of either family (IPv4 mapped) and ports in network byte order. Only these five fields are hashed
 * and compared, so the padding after proto never matters. Both addresses of a key are of one family. */
struct flow_key {
	struct ipaddr saddr, daddr;
	uint16_t sport, dport;
	uint8_t proto;
};

/* FLOW_PERSIST: a client's entry in a `persistence = client` service (key without the client port). */
enum flow_state { FLOW_TCP_SYN, FLOW_TCP_EST, FLOW_TCP_FIN, FLOW_TCP_CLOSED, FLOW_UDP, FLOW_OTHER, FLOW_PERSIST };
#define FLOW_STATE_LAST FLOW_PERSIST

/* What callers see: 8 bytes; the key is stored beside it in the table's own compact form (flow_key_of).
 * backend, state and flags are the caller's to change in place. */
struct flow {
	uint16_t backend;               /* caller's stable backend slot id */
	uint8_t state;                  /* enum flow_state */
	uint8_t flags;                  /* caller-defined bits */
	uint32_t last_seen;             /* now_ms >> FLOW_TIME_SHIFT, modulo 2^32; use flow_idle_ms() */
};

/* Idle time after which a flow in each state is expired. FLOW_TCP_CLOSED uses tcp_fin_ms. */
struct flow_timeouts {
	uint32_t tcp_syn_ms, tcp_est_ms, tcp_fin_ms, udp_ms, other_ms, persist_ms;
};

struct flow_table;

/* A fast hash with a fixed seed, a function of the addresses, ports and protocol only: every node, of either
 * byte order, computes the same value. Also the input to maglev_lookup. */
uint32_t flow_hash(const struct flow_key *k);
/* For fragments, which carry no ports: addresses and protocol only. */
uint32_t flow_hash_addrs(const struct ipaddr *saddr, const struct ipaddr *daddr, uint8_t proto);

/* flow_max in 1..FLOW_MAX_LIMIT, else NULL with errno = EINVAL; ENOMEM if memory is short. All memory is
 * allocated and touched here, so the packet path never takes a page fault in the table.
 * ipv6 = 0: an IPv4-only table of 32-byte entries, which holds no IPv6 key (lookup finds none, insert fails
 * with EAFNOSUPPORT); ipv6 = 1: 56-byte entries for keys of both families. */
struct flow_table *flow_create(uint32_t flow_max, int ipv6);
/* Whether the table takes IPv6 keys. */
int flow_ipv6(const struct flow_table *t);
void flow_destroy(struct flow_table *t);

/* The table finds k's chain with a keyed hash (SipHash-2-4 under a random key of this table), never with
 * flow_hash: outsiders choose the tuples, and with a public hash they could put every flow in one chain. */
struct flow *flow_lookup(struct flow_table *t, const struct flow_key *k);
/* Adds a flow seen at now_ms with flags 0. If the key is present, sets its backend and state, touches it and
 * returns it (flags kept). NULL with errno = ENOSPC when the table already holds flow_max flows. */
struct flow *flow_insert(struct flow_table *t, const struct flow_key *k, uint16_t backend, uint8_t state,
		uint64_t now_ms);
/* The chain k belongs to in this table (for tests: another table, another key, another chain). */
uint32_t flow_chain(const struct flow_table *t, const struct flow_key *k);
void flow_touch(struct flow_table *t, struct flow *f, uint64_t now_ms);
/* Marks f as last seen idle_ms before now_ms, e.g. for a flow learnt from the peer. */
void flow_set_idle(struct flow_table *t, struct flow *f, uint64_t now_ms, uint32_t idle_ms);
/* The key of a flow of this table. */
void flow_key_of(const struct flow_table *t, const struct flow *f, struct flow_key *k);
/* f must come from this table; deleting a flow that is already free does nothing. f is invalid afterwards. */
void flow_delete(struct flow_table *t, struct flow *f);

uint32_t flow_count(const struct flow_table *t);
uint32_t flow_max(const struct flow_table *t);
/* All memory of the table, and that divided by flow_max, rounded up. */
size_t flow_mem_bytes(const struct flow_table *t);
size_t flow_bytes_per_flow(const struct flow_table *t);

/* Idle time in ms, accurate to within 16 ms (the time unit).
 * Saturates at UINT32_MAX (49.7 days); last_seen is compared modulo 2^32 units, so idle times up to 2^31 units
 * (397 days) are never mistaken for short ones, and a last_seen ahead of now_ms counts as 0. */
uint32_t flow_idle_ms(const struct flow_table *t, const struct flow *f, uint64_t now_ms);
/* The timeout that applies to a flow in state s (an unknown state gets other_ms). */
uint32_t flow_timeout_ms(const struct flow_timeouts *to, uint8_t state);

/* Incremental expiry: looks at up to max_scan pool slots (at most flow_max) from an internal cursor that
 * wraps around, and deletes each flow whose idle time exceeds its state's timeout, calling cb (if not NULL)
 * just before. cb must not modify the table. Returns the number deleted. */
size_t flow_expire(struct flow_table *t, uint64_t now_ms, const struct flow_timeouts *to, size_t max_scan,
		void (*cb)(void *arg, const struct flow *f, const struct flow_key *k), void *arg);

/* Resumable iteration for listing and bulk sync: *cursor starts at 0; returns the next flow, or NULL at the
 * end. On an unchanged table it visits each flow exactly once; if the table changes between calls it may
 * skip or repeat flows, never crash. */
struct flow *flow_next(struct flow_table *t, uint32_t *cursor);

/* TCP flags, as in byte 13 of the TCP header. */
#define FLOW_TH_FIN 0x01
#define FLOW_TH_SYN 0x02
#define FLOW_TH_RST 0x04
#define FLOW_TH_ACK 0x10

/* Client-side TCP state tracking, pure: the next state given the current one and the flags of a client->VIP
 * segment, in the spirit of IPVS's input-only table (ip_vs_proto_tcp.c):
 *
 *      SYN --ACK--> EST --FIN--> FIN            RST from any state --> CLOSED
 *       ^                         |
 *       +---- bare SYN in FIN or CLOSED (*new_connection = 1: pick the backend again)
 *
 * A SYN in SYN or EST (a retransmission) keeps the flow; SYN+FIN, SYN+RST and SYN+ACK from a client are
 * bogus and change nothing. A state that is not TCP counts as CLOSED. new_connection may be NULL.
 * For a segment with no flow yet, start from FLOW_TCP_SYN: a SYN stays SYN, a mid-stream ACK gives EST. */
enum flow_state flow_tcp_next(enum flow_state cur, uint8_t tcp_flags, int *new_connection);

/* "SYN", "EST", "FIN", "CLOSED", "UDP", "OTHER", or "?". */
const char *flow_state_name(uint8_t state);

#endif
