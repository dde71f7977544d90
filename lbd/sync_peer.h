/* Inside connection-state sync (sync.c, sync_peer.c, sync_table.c): the state the mesh shares with its
 * peers, one peer session, and the table side (flows in and out of the workers' tables). Modules outside
 * sync use sync.h only. Calls go one way: sync.c -> sync_peer.c -> sync_table.c -> worker.h, dp.c. */
#ifndef DSR_SYNC_PEER_H
#define DSR_SYNC_PEER_H

#include <ev.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "flow.h"
#include "ipaddr.h"
#include "sync.pb-c.h"

#define SYNC_BATCH        1200              /* flows per message at most ... */
/* ... and at most what fits AUTH_MAX_MSG by the largest encoding of each flow (a SyncFlow and its
 * 2-byte tag and length in the message): every field set, every varint at its longest. 1200 IPv4 flows
 * always fit (45.6 kB); IPv6 flows fill a message at 843. The message's own fields take at most
 * SYNC_MSG_HEAD_MAX. tests/unit/test_sync.c checks these bounds against protobuf-c. */
#define SYNC_FLOW_WIRE_V4 38
#define SYNC_FLOW_WIRE_V6 77
#define SYNC_MSG_HEAD_MAX 64
#define SYNC_FRAME_MAX    (4 + AUTH_MAX_ENVELOPE)
#define SYNC_OUT_PEER_MAX (8u << 20)        /* output buffer of one peer: a pair's peer gets this ... */
#define SYNC_OUT_TOTAL    (16u << 20)       /* ... N peers share this, each at least SYNC_OUT_PEER_MIN */
#define SYNC_OUT_PEER_MIN (1u << 20)
#define SYNC_LAGS         4096              /* lag samples kept per peer ... */
#define SYNC_LAG_WINDOW_MS 5000             /* ... of which those this recent make lag_p99_ms */
#define SYNC_WHY_MAX      64

struct lbd;
struct Dsrlb__SyncPeerStatus;

/* One flow as a SyncFlow carries it, either family (struct ipaddr: IPv4 mapped). Ports in network order. */
struct sync_flow_rec {
	struct flow_key key;
	struct ipaddr backend;          /* none (::) = no backend */
	uint32_t idle_ms;
	uint8_t state;
	uint8_t deleted;
};

/* A SyncFlow of an outgoing message and the bytes its IPv6 fields point to: 48 bytes a flow beside the
 * protobuf-c struct, so the scratch holds a whole message of either family. */
struct sync_flow_buf {
	Dsrlb__SyncFlow sf;
	uint8_t saddr6[16], daddr6[16], backend6[16];
};

/* An outgoing message being filled in sh->msg_flows: how many flows, their largest encoded size. */
struct sync_batch {
	size_t n, bytes;
};

enum sync_bulk { BULK_NONE, BULK_REQUESTED, BULK_RECEIVING, BULK_DONE };

/* What a node says about itself in NODE_STATE (proto/sync.proto SyncNodeState). */
struct sync_node_state {
	int forwarding;
	int announced;
	char why[SYNC_WHY_MAX];
	uint64_t flows;
	uint8_t digest[CFG_DIGEST_LEN];
};

/* Owned by sync.c, read and written by its peers on the main thread: the scratch buffers one message
 * at a time needs, and what every peer's messages carry. */
struct sync_shared {
	struct lbd *l;
	struct auth_keyring *keys;
	uint8_t *pbuf, *ebuf;           /* packed message, sealed envelope */
	uint8_t *plain;                 /* opened payload */
	struct sync_flow_buf msg_flows[SYNC_BATCH];
	Dsrlb__SyncFlow *msg_ptrs[SYNC_BATCH];
	size_t out_max;                 /* each peer's output buffer (sync_out_cap) */
	unsigned n_established;         /* l->sync_on = n_established > 0 */
	uint64_t dropped;               /* updates discarded: no peer established, or not encodable */
	struct sync_node_state self;    /* sync.c refreshes it; NODE_STATE sends it */
	char self_name[CFG_NAME_MAX];   /* a copy: a reload frees the config it came from */
};

/* A connection from the peer's address that has not yet sent an authentic message (accepting side). */
struct sync_pending {
	int fd;
	ev_io rio;
	ev_timer deadline;
	uint8_t *in;
	size_t in_len;
	int hellos;
};

/* The session with one other node: its connection, handshake, buffers, transfers and counters. */
struct sync_peer {
	struct sync_shared *sh;
	struct auth_session *sess;
	char name[CFG_NAME_MAX];
	struct ipaddr self_addr, addr;  /* one family: all node addresses share it */
	uint16_t port;
	int initiator;                  /* we have the lower address: we connect */

	int fd;
	ev_io rio, wio;
	ev_timer retry;
	int connecting, established, rx_ok, hellos;
	struct sync_pending pend;

	uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_off;

	/* the table we receive */
	enum sync_bulk bulk;
	uint64_t bulk_received, bulk_total, bulk_started_ms, bulk_done_ms;
	uint32_t bulk_duration_ms;
	/* the table we send */
	int bulk_tx, bulk_tx_sent;
	uint32_t bulk_tx_cursor;

	int peer_active;
	uint32_t lags[SYNC_LAGS];
	uint64_t lag_at[SYNC_LAGS];     /* when each sample was taken (ms) */
	uint32_t n_lags, last_lag;
	uint64_t last_lag_ms_at;
	uint64_t sent_flows, recv_flows, sent_msgs, recv_msgs, rejected, dropped, unknown_backend, reconnects,
		bulk_sent;
	uint64_t unauthenticated, handshake_timeouts, oversized, refused;
	uint64_t bad_flows;             /* flows refused by sync_table_decode (status: bad_flows) */
	uint64_t no_ipv6;               /* IPv6 flows for our IPv4-only table (status: no_ipv6_table) */

	/* its last NODE_STATE */
	struct sync_node_state remote;
	int remote_has_our_bulk;        /* on the current connection */
	uint64_t remote_at_ms;          /* 0: none yet */
	char addr_str[IPADDR_STRLEN];
};

/* sync_peer.c */
struct sync_peer *sync_peer_create(struct sync_shared *sh, const struct cfg_node *self,
				   const struct cfg_node *node, uint16_t port);
void sync_peer_destroy(struct sync_peer *p);
/* An accepted connection from the peer's address: pending until it authenticates. */
void sync_peer_accept(struct sync_peer *p, int fd);
/* Seals and queues one message; -1 when its output buffer is full or it has no connection. */
int sync_peer_send(struct sync_peer *p, Dsrlb__SyncMessage *m);
/* NODE_STATE with sh->self and whether we have its whole table. */
void sync_peer_send_state(struct sync_peer *p);
const char *sync_peer_state_str(const struct sync_peer *p);
/* lag p99 over the window (scratch: SYNC_LAGS entries); how many samples in *n. */
uint32_t sync_peer_lag_p99(const struct sync_peer *p, uint64_t now, uint32_t *scratch, uint32_t *n);
/* Fills a status entry; strings point into p or are static. */
void sync_peer_status(const struct sync_peer *p, struct Dsrlb__SyncPeerStatus *ps, uint64_t now,
		      uint32_t *scratch);
void sync_peer_reload(struct sync_peer *p, struct auth_keyring *keys);

/* sync_table.c: flows between the workers' tables and messages (main thread) */
/* Encodes r into fb (fb->sf points into fb): an IPv4 flow in the fixed32 fields, an IPv6 one in the
 * bytes fields. -1 if r mixes the families (a backend of the other family than the key's), which
 * nothing may send. */
int sync_table_fill(struct sync_flow_buf *fb, const struct sync_flow_rec *r);
/* The largest encoding of a flow of k's family in a message (SYNC_FLOW_WIRE_V4 or _V6). */
size_t sync_table_wire_max(const struct flow_key *k);
/* Appends r to the message in sh->msg_flows: 1 added, 0 the message is full (SYNC_BATCH flows or
 * AUTH_MAX_MSG bytes), -1 not encodable (skipped). */
int sync_table_add(struct sync_shared *sh, struct sync_batch *b, const struct sync_flow_rec *r);
/* Decodes a flow a peer sent (proto/sync.proto has the rules): NULL, or why it is refused. */
const char *sync_table_decode(const Dsrlb__SyncFlow *sf, struct sync_flow_rec *r);
enum sync_apply { SYNC_APPLY_DONE, SYNC_APPLY_UNKNOWN_BACKEND, SYNC_APPLY_NO_IPV6 };
/* Installs (or deletes) one decoded flow in the table of the worker its packets reach. NO_IPV6: an IPv6
 * flow and an IPv4-only table (flow_ipv6), not installed. A full table is counted in l->ctr. */
enum sync_apply sync_table_apply(struct lbd *l, const struct sync_flow_rec *r);
/* A message's worth of our table (sync_table_add) from *cursor on into sh->msg_flows; sets *done at the
 * end. */
size_t sync_table_chunk(struct sync_shared *sh, uint32_t *cursor, int *done);
/* Drops what the workers queued (nobody to send it to); how many. */
uint64_t sync_table_discard(struct lbd *l);

/* sync.c: the pure rules, for the unit tests */
size_t sync_out_cap(size_t n_peers);
/* Ready (vrrpd may preempt, a node may announce): no peer, or timed out, or one peer's bulk is done
 * and no established peer's bulk is still under way. */
int sync_ready_rule(const enum sync_bulk *bulk, const int *established, size_t n, int timed_out);
/* The cluster's one state word from each peer's (docs/status.md). */
const char *sync_state_aggregate(const char *const *states, size_t n);

#endif
