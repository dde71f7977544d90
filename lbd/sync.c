/* Connection-state sync among the lbd's of a cluster: a full mesh, one session (sync_peer.c) with each
 * other node of the config; a pair is a mesh of one peer. This file holds the mesh: the listener, which
 * hands a connection from a member's address to that member's session and closes any other at once;
 * the flush, which drains each worker's update queue once and appends every batch to every established
 * peer; NODE_STATE for the cluster view; readiness; and the status.
 *
 *   listener ──accept──► member's address? ──no──► closed, refused_not_peer++
 *                                         └─yes──► sync_peer_accept (pending until it authenticates)
 *   workers' queues ──flush (5 ms)──► one UPDATE per batch ──► every established peer's output buffer
 *   NODE_STATE ──► every established peer: on establishment, on a change (checked every 100 ms), every 1 s
 *
 * For each pair of nodes the lower address connects (sync_peer.c has the handshake and who may take a
 * session). Flow updates are queued by the forwarding path (fwd.c) into each worker's bounded queue
 * (lbd/spsc.h) while l->sync_on says at least one peer is established. A node sends only what its own
 * forwarding produced (an active lbd; in mode = ecmp every forwarding node is active), never what it
 * received; each new connection starts with a bulk transfer of the whole table, learnt flows included.
 *
 * Sockets are of the node addresses' family (all nodes share one): an AF_INET or an AF_INET6 listener
 * bound to our node address, and members told apart by struct ipaddr.
 *
 * Memory: each peer's output buffer is sync_out_cap(N) bytes (8 MiB for a pair, a share of 16 MiB, at
 * least 1 MiB, in a mesh); when one is full, updates for that peer alone are dropped and counted. A
 * flow takes about 31 bytes of it as IPv4, 70 as IPv6 (sync_table.c). The shared scratch holds one
 * message: SYNC_BATCH struct sync_flow_buf (IPv6 addresses included) and the pack/seal/open buffers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "control.pb-c.h"
#include "lbd.h"
#include "log.h"
#include "startup.h"
#include "sync_peer.h"

#define SYNC_FLUSH_S      0.005
#define SYNC_STATE_TICK_S 0.1               /* NODE_STATE: a change is sent within this */
#define SYNC_STATE_EVERY_MS 1000            /* ... and the state anyway this often */
#define SYNC_BACKLOG      16                /* a burst of connections waits here, not in lbd */

struct sync_ctx {
	struct sync_shared sh;
	struct sync_peer *peers[CFG_MAX_NODES];
	size_t n_peers;
	uint64_t start_ms;
	struct ipaddr self_addr;
	uint16_t port;

	int listen_fd;
	ev_io listen_io;
	ev_timer flush, state_tick;
	ev_async wake;
	struct sync_node_state last_sent;
	uint64_t last_sent_ms;

	uint64_t refused_not_peer;
	uint32_t lags_sorted[SYNC_LAGS];        /* sync_status's scratch */
	Dsrlb__SyncPeerStatus peer_st[CFG_MAX_NODES];
	Dsrlb__SyncPeerStatus *peer_ptrs[CFG_MAX_NODES];
};

size_t sync_out_cap(size_t n_peers)
{
	size_t share = n_peers ? SYNC_OUT_TOTAL / n_peers : SYNC_OUT_PEER_MAX;

	if (share > SYNC_OUT_PEER_MAX)
		share = SYNC_OUT_PEER_MAX;
	return share < SYNC_OUT_PEER_MIN ? SYNC_OUT_PEER_MIN : share;
}

int sync_ready_rule(const enum sync_bulk *bulk, const int *established, size_t n, int timed_out)
{
	int any_done = 0;

	if (!n || timed_out)
		return 1;
	for (size_t i = 0; i < n; i++) {
		if (bulk[i] == BULK_DONE)
			any_done = 1;
		else if (established[i] && (bulk[i] == BULK_REQUESTED || bulk[i] == BULK_RECEIVING))
			return 0;
	}
	return any_done;
}

const char *sync_state_aggregate(const char *const *states, size_t n)
{
	size_t est = 0, hs = 0;

	if (!n)
		return "disabled";
	for (size_t i = 0; i < n; i++) {
		est += !strcmp(states[i], "established");
		hs += !strcmp(states[i], "handshake");
	}
	if (est == n)
		return "established";
	if (est)
		return "partial";
	return hs ? "handshake" : "connecting";
}

/* Sends what the workers queued, a batch per message, to every established peer. A peer whose output
 * buffer is full loses that batch (counted as its `dropped`); the others still get it. */
static void sync_flush(struct sync_ctx *s)
{
	struct lbd *l = s->sh.l;

	for (unsigned i = 0; i < l->n_workers; i++) {
		struct lbd_syncq *sq = worker_syncq(&l->workers[i]);
		uint32_t first, ready;

		while ((ready = spsc_peek(&sq->q, &first)) > 0) {
			Dsrlb__SyncMessage m = DSRLB__SYNC_MESSAGE__INIT;
			struct sync_batch batch = { 0, 0 };
			uint32_t used = 0;
			size_t n;

			m.sent_ms = sq->rec[spsc_slot(&sq->q, first)].queued_ms;
			for (; used < ready; used++) {
				const struct lbd_sync_rec *q = &sq->rec[spsc_slot(&sq->q, first + used)];
				struct sync_flow_rec r = { .key = q->key, .backend = q->backend, .idle_ms = 0,
							   .state = q->state, .deleted = q->deleted };
				int added = sync_table_add(&s->sh, &batch, &r);

				if (!added)
					break;
				if (added < 0)
					s->sh.dropped++;        /* families mixed: a broken invariant, not sent */
			}
			spsc_pop(&sq->q, used);
			if (!(n = batch.n))
				continue;
			m.type = DSRLB__SYNC_TYPE__SYNC_UPDATE;
			m.flows = s->sh.msg_ptrs;
			m.n_flows = n;
			for (size_t k = 0; k < s->n_peers; k++) {
				struct sync_peer *p = s->peers[k];
				if (!p->established)
					continue;
				if (sync_peer_send(p, &m) < 0)
					p->dropped += n;
				else
					p->sent_flows += n;
			}
		}
	}
}

/* After draining: whatever a worker queued meanwhile without waking us (spsc_drained's second look). */
static int sync_queues_drained(const struct sync_ctx *s)
{
	for (unsigned i = 0; i < s->sh.l->n_workers; i++)
		if (!spsc_drained(&worker_syncq(&s->sh.l->workers[i])->q))
			return 0;
	return 1;
}

static void sync_flush_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct sync_ctx *s = t->data;

	if (s->sh.n_established)
		sync_flush(s);
	else
		s->sh.dropped += sync_table_discard(s->sh.l);
	/* Whatever a worker queued meanwhile goes with the next batch. */
	if (!sync_queues_drained(s)) {
		ev_timer_set(t, SYNC_FLUSH_S, 0.);
		ev_timer_start(loop, t);
	}
}

/* A worker queued the first update of a batch: flush within SYNC_FLUSH_S. */
static void sync_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct sync_ctx *s = a->data;

	/* A one-shot timer's time is absolute once it has run: set it anew before each start. */
	if (!ev_is_active(&s->flush)) {
		ev_timer_set(&s->flush, SYNC_FLUSH_S, 0.);
		ev_timer_start(loop, &s->flush);
	}
}

/* What NODE_STATE says about this node; sent to every established peer when it changed (the flow count
 * aside, which changes all the time) or SYNC_STATE_EVERY_MS after the last time. */
static void sync_state_fill(struct sync_ctx *s)
{
	struct lbd *l = s->sh.l;
	struct sync_node_state *self = &s->sh.self;

	self->forwarding = l->active;
	self->announced = l->announced;
	memcpy(self->why, l->announce_why, sizeof(self->why));
	self->why[sizeof(self->why) - 1] = 0;
	memcpy(self->digest, l->cfg->digest, sizeof(self->digest));
	self->flows = s->last_sent.flows;
}

static void sync_state_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct sync_ctx *s = t->data;
	struct sync_node_state *self = &s->sh.self;
	uint64_t now = clock_ms();
	int due = now - s->last_sent_ms >= SYNC_STATE_EVERY_MS;

	sync_state_fill(s);
	if (!due && !memcmp(self, &s->last_sent, sizeof(*self)))
		return;
	self->flows = worker_flow_count(s->sh.l);
	for (size_t i = 0; i < s->n_peers; i++)
		sync_peer_send_state(s->peers[i]);
	s->last_sent = *self;
	s->last_sent_ms = now;
}

/* Connections from a member's address go to that member's session; any other is closed at once. */
static void sync_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync_ctx *s = w->data;
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	struct ipaddr addr;
	char str[IPADDR_STRLEN];
	int fd = accept4(s->listen_fd, (struct sockaddr *)&from, &flen, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (ipaddr_from_sockaddr((struct sockaddr *)&from, &addr, NULL) == 0) {
		for (size_t i = 0; i < s->n_peers; i++) {
			if (ipaddr_eq(&s->peers[i]->addr, &addr)) {
				sync_peer_accept(s->peers[i], fd);
				return;
			}
		}
	} else {
		memset(&addr, 0, sizeof(addr));
	}
	s->refused_not_peer++;
	log_rl(LOG_LVL_WARN, "sync: connection from %s refused: not a member", ipaddr_str(&addr, str));
	close(fd);
}

static int sync_listen(struct sync_ctx *s)
{
	struct sockaddr_storage ss;
	socklen_t len = ipaddr_sockaddr(&s->self_addr, s->port, &ss);
	char str[IPADDR_STRLEN];
	int one = 1;

	s->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0) {
		log_err("%s: socket: %s", __func__, strerror(errno));
		return -1;
	}
	setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Bound to our IPv6 node address anyway; IPv4 members (never mixed with IPv6 ones) are not ours. */
	if (ss.ss_family == AF_INET6)
		setsockopt(s->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(s->listen_fd, (struct sockaddr *)&ss, len) < 0 || listen(s->listen_fd, SYNC_BACKLOG) < 0) {
		log_err("sync: listen on %s port %u: %s", ipaddr_str(&s->self_addr, str), s->port, strerror(errno));
		return -1;
	}
	ev_io_init(&s->listen_io, sync_accept_cb, s->listen_fd, EV_READ);
	s->listen_io.data = s;
	ev_io_start(s->sh.l->loop, &s->listen_io);
	return 0;
}

struct sync_ctx *sync_create(struct lbd *l)
{
	const struct cfg_node *self;
	struct sync_ctx *s;
	char err[512];
	int listen_needed = 0;

	if (!l->cfg->sync)
		return NULL;
	self = cfg_find_node(l->cfg, l->node, err, sizeof(err));
	if (!self || l->cfg->n_nodes < 2)
		return NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	s->sh.l = l;
	snprintf(s->sh.self_name, sizeof(s->sh.self_name), "%s", self->name);
	s->listen_fd = -1;
	s->self_addr = self->addr;
	s->port = l->cfg->sync_port;
	s->start_ms = clock_ms();
	s->sh.out_max = sync_out_cap(l->cfg->n_nodes - 1);
	ev_init(&s->flush, sync_flush_cb);
	ev_init(&s->state_tick, sync_state_tick_cb);
	ev_async_init(&s->wake, sync_wake_cb);
	s->flush.data = s->state_tick.data = s->wake.data = s;
	s->sh.keys = startup_keys(l->cfg, l->gid, err, sizeof(err));
	if (!s->sh.keys) {
		log_err("sync: %s", err);
		goto fail;
	}
	s->sh.pbuf = malloc(AUTH_MAX_MSG);
	s->sh.ebuf = malloc(AUTH_MAX_ENVELOPE);
	s->sh.plain = malloc(AUTH_MAX_MSG);
	if (!s->sh.pbuf || !s->sh.ebuf || !s->sh.plain) {
		log_err("%s: out of memory", __func__);
		goto fail;
	}
	for (size_t i = 0; i < l->cfg->n_nodes; i++) {
		const struct cfg_node *n = &l->cfg->nodes[i];
		if (n == self)
			continue;
		if (!(s->peers[s->n_peers] = sync_peer_create(&s->sh, self, n, s->port)))
			goto fail;
		listen_needed |= !s->peers[s->n_peers]->initiator;
		s->n_peers++;
	}
	/* Only a node that some member connects to (one with a lower address) listens. */
	if (listen_needed && sync_listen(s) < 0)
		goto fail;
	/* What a session established before the first tick says about us. */
	sync_state_fill(s);
	ev_async_start(l->loop, &s->wake);
	l->sync_wake = &s->wake;
	ev_timer_set(&s->state_tick, SYNC_STATE_TICK_S, SYNC_STATE_TICK_S);
	ev_timer_start(l->loop, &s->state_tick);
	return s;
fail:
	sync_destroy(s);
	return NULL;
}

void sync_destroy(struct sync_ctx *s)
{
	struct lbd *l;

	if (!s)
		return;
	l = s->sh.l;
	if (l->sync_wake == &s->wake)
		l->sync_wake = NULL;
	ev_timer_stop(l->loop, &s->flush);
	ev_timer_stop(l->loop, &s->state_tick);
	ev_async_stop(l->loop, &s->wake);
	if (s->listen_fd >= 0) {
		ev_io_stop(l->loop, &s->listen_io);
		close(s->listen_fd);
	}
	for (size_t i = 0; i < s->n_peers; i++)
		sync_peer_destroy(s->peers[i]);
	auth_keyring_destroy(s->sh.keys);
	free(s->sh.pbuf);
	free(s->sh.ebuf);
	free(s->sh.plain);
	free(s);
}

void sync_reload(struct sync_ctx *s, struct auth_keyring *keys)
{
	for (size_t i = 0; i < s->n_peers; i++)
		sync_peer_reload(s->peers[i], keys);
	auth_keyring_destroy(s->sh.keys);
	s->sh.keys = keys;
}

static int sync_timed_out(const struct sync_ctx *s)
{
	return clock_ms() - s->start_ms >= s->sh.l->cfg->sync_timeout_ms;
}

/* sync_ready_rule on the peers as they are now. */
static int sync_ready_now(const struct sync_ctx *s, int timed_out)
{
	enum sync_bulk bulk[CFG_MAX_NODES];
	int est[CFG_MAX_NODES];

	for (size_t i = 0; i < s->n_peers; i++) {
		bulk[i] = s->peers[i]->bulk;
		est[i] = s->peers[i]->established;
	}
	return sync_ready_rule(bulk, est, s->n_peers, timed_out);
}

int sync_ready(const struct sync_ctx *s)
{
	return !s || sync_ready_now(s, sync_timed_out(s));
}

const char *sync_state_str(const struct sync_ctx *s)
{
	const char *states[CFG_MAX_NODES];

	if (!s)
		return "disabled";
	for (size_t i = 0; i < s->n_peers; i++)
		states[i] = sync_peer_state_str(s->peers[i]);
	return sync_state_aggregate(states, s->n_peers);
}

/* The top-level fields: a pair's one peer as they always were; in a mesh, sums of the peers' counters,
 * and for the rest the peer that tells most (docs/status.md). */
void sync_status(struct sync_ctx *s, Dsrlb__SyncStatus *st)
{
	static const char *bulk_names[] = { "none", "requested", "receiving", "done" };
	uint64_t now = clock_ms(), newest_lag = 0;
	struct lbd_counters c;
	enum sync_bulk bulk = BULK_NONE;        /* of the peers whose transfer is not done */

	st->state = (char *)sync_state_str(s);
	if (!s)
		return;
	st->peer = s->n_peers == 1 ? s->peers[0]->addr_str : "";
	st->bulk_done_ms_ago = -1;
	st->dropped = s->sh.dropped;
	for (size_t i = 0; i < s->n_peers; i++) {
		const struct sync_peer *p = s->peers[i];
		Dsrlb__SyncPeerStatus *ps = &s->peer_st[i];

		dsrlb__sync_peer_status__init(ps);
		sync_peer_status(p, ps, now, s->lags_sorted);
		s->peer_ptrs[i] = ps;
		if (p->n_lags && p->last_lag_ms_at >= newest_lag) {
			newest_lag = p->last_lag_ms_at;
			st->last_lag_ms = p->last_lag;
		}
		if (ps->lag_p99_ms >= st->lag_p99_ms) {
			st->lag_p99_ms = ps->lag_p99_ms;
			st->lag_samples = ps->lag_samples;
		}
		if (p->bulk != BULK_DONE && p->bulk > bulk)
			bulk = p->bulk;
		st->bulk_received += p->bulk_received;
		st->bulk_total += p->bulk_total;
		if (p->bulk == BULK_DONE && (st->bulk_done_ms_ago < 0 || ps->bulk_done_ms_ago < st->bulk_done_ms_ago)) {
			st->bulk_done_ms_ago = ps->bulk_done_ms_ago;
			st->bulk_duration_ms = p->bulk_duration_ms;
		}
		st->sent_flows += p->sent_flows;
		st->received_flows += p->recv_flows;
		st->sent_messages += p->sent_msgs;
		st->received_messages += p->recv_msgs;
		st->rejected += ps->rejected;
		st->dropped += p->dropped;
		st->unknown_backend += ps->unknown_backend;
		st->bad_flows += ps->bad_flows;
		st->no_ipv6_table += ps->no_ipv6_table;
		st->reconnects += p->reconnects;
		st->bulk_sent += p->bulk_sent;
		st->unauthenticated += p->unauthenticated;
		st->handshake_timeouts += p->handshake_timeouts;
		st->oversized += p->oversized;
		st->peer_active |= p->peer_active;
		st->peers_established += p->established;
	}
	st->n_peers = s->n_peers;
	st->peers = s->peer_ptrs;
	/* "done" when the bulk part of sync_ready holds, else the transfer furthest along, as for a pair. */
	st->ready = sync_ready(s);
	if (sync_ready_now(s, 0))
		bulk = BULK_DONE;
	st->bulk_state = (char *)(bulk != BULK_DONE && sync_timed_out(s) ? "timeout" : bulk_names[bulk]);
	worker_counters(s->sh.l, &c);
	st->dropped += c.sync_dropped;
	st->refused_not_peer = s->refused_not_peer;
	st->rejected += s->refused_not_peer;
	st->out_max = s->sh.out_max;
}
