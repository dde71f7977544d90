/* Connection-state sync between the two lbd's of a pair.
 *
 * Transport: one TCP connection, opened by the node with the lower address and accepted only from the
 * peer's address. Each frame is a 4-byte big-endian length and an Envelope (common/auth.h, kind SYNC)
 * sealing one SyncMessage (proto/sync.proto). TCP gives order and retransmission while a connection
 * lives; every new connection starts with a bulk transfer of the whole table, which fills whatever was
 * lost with the old one. So there are no permanent holes without a sequence/ack scheme of our own.
 *
 * Handshake: the envelope accepts a new epoch of the peer only when it echoes our current challenge
 * (replay protection across restarts). Both sides send HELLO on connect and answer a HELLO with a
 * HELLO while they are not yet established or the peer has not yet accepted them; `peer_accepted`
 * says "a message of yours was accepted on this connection". A side is established once an accepted
 * message says it was accepted; only then are updates and bulk requests sent, so none is rejected as
 * stale.
 *
 *   connect ──HELLO──► ◄──HELLO── (stale: learn challenge) ──HELLO(pa)──► established ◄──HELLO(pa)──
 *
 * Who may take the session. The accepting side keeps its connection until a newer one from the
 * peer's address has *authenticated* (sent its first authentic message): a connection from the peer's
 * address is only pending until then, one at a time (a newer pending connection replaces an older
 * one, never the session), and is closed at the handshake deadline. Connections from any other
 * address are closed at once. Without this, any process on the peer node (or a host spoofing its
 * address) could cut the session with an empty connection. The connecting side closes its own
 * connection when the far end has not authenticated by the same deadline, and tries again.
 *
 *   accept ─► other address: closed, counted
 *          └► peer address ─► pending ──first authentic message──► the session (the old one closed)
 *                                  └──deadline, a newer pending one, oversized frame, EOF──► closed, counted
 *
 * Memory one connection can cost: an input buffer of one frame (SYNC_FRAME_MAX); a length prefix
 * above the largest frame closes the connection at once. The pending connection has its own buffer,
 * allocated once, and sends only HELLOs, straight to the socket; the output buffer belongs to the
 * authenticated session alone. So the sync port costs at most two connections and two input buffers,
 * plus the kernel's listen backlog, whatever a non-member sends or however many connections it opens.
 *
 * Flow updates (creations, state and backend changes, deletions, periodic refreshes of live flows)
 * are queued by the forwarding path (fwd.c) into each worker's bounded queue (lbd/spsc.h) while
 * l->sync_on says the session is established, and flushed every few milliseconds in batches. sync.c
 * reaches the workers only through worker.h: their queues, and their tables under their locks.
 * The output buffer is bounded too: when the peer is slow or gone, updates are dropped and counted, and
 * the next bulk sync repairs the peer. Only an active lbd sends updates; a standby installs what it
 * receives without forwarding. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "control.pb-c.h"
#include "lbd.h"
#include "log.h"
#include "startup.h"
#include "sync.pb-c.h"

#define SYNC_BATCH        1200              /* flows per message: fits AUTH_MAX_MSG */
#define SYNC_OUT_MAX      (8u << 20)        /* bytes waiting for the socket */
#define SYNC_FRAME_MAX    (4 + AUTH_MAX_ENVELOPE)
#define SYNC_FLUSH_S      0.005
#define SYNC_RETRY_S      0.2
#define SYNC_CONNECT_S    1.0
#define SYNC_HELLO_MAX    16                /* per connection: the handshake needs 2 or 3 */
#define SYNC_HANDSHAKE_S  2.0               /* a connection's first authentic message is due within */
#define SYNC_BACKLOG      16                /* a burst of connections waits here, not in lbd */
#define SYNC_LAGS         4096              /* lag samples kept ... */
#define SYNC_LAG_WINDOW_MS 5000             /* ... of which those this recent make lag_p99_ms */

enum sync_bulk { BULK_NONE, BULK_REQUESTED, BULK_RECEIVING, BULK_DONE };

/* A connection from the peer's address that has not yet sent an authentic message (accepting side). */
struct sync_pending {
	int fd;
	ev_io rio;
	ev_timer deadline;
	uint8_t *in;
	size_t in_len;
	int hellos;
};

struct sync_ctx {
	struct lbd *l;
	struct auth_keyring *keys;
	struct auth_session *sess;
	uint32_t self_addr, peer_addr;
	uint16_t port;
	int initiator;                  /* lower address: connects */

	int listen_fd;
	ev_io listen_io;
	int fd;
	ev_io rio, wio;
	ev_timer retry, flush;
	ev_async wake;
	int connecting, established, rx_ok, hellos;
	struct sync_pending pend;

	uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_off;
	uint8_t *pbuf, *ebuf;           /* packed message, sealed envelope */
	uint8_t *plain;                 /* opened payload */


	Dsrlb__SyncFlow msg_flows[SYNC_BATCH];
	Dsrlb__SyncFlow *msg_ptrs[SYNC_BATCH];

	/* the table we receive */
	enum sync_bulk bulk;
	uint64_t bulk_received, bulk_total, bulk_started_ms, bulk_done_ms;
	uint32_t bulk_duration_ms;
	/* the table we send */
	int bulk_tx;
	uint32_t bulk_tx_cursor;

	int peer_active;
	uint64_t start_ms;
	uint32_t lags[SYNC_LAGS];
	uint64_t lag_at[SYNC_LAGS];             /* when each sample was taken (ms) */
	uint32_t n_lags, last_lag;
	uint64_t sent_flows, recv_flows, sent_msgs, recv_msgs, rejected, dropped, unknown_backend, reconnects,
		bulk_sent;
	uint64_t refused_not_peer, unauthenticated, handshake_timeouts, oversized;
	char peer_str[INET_ADDRSTRLEN];
	uint32_t lags_sorted[SYNC_LAGS];        /* sync_status's scratch */
};

static void sync_close(struct sync_ctx *s, const char *why);
static void sync_bulk_pump(struct sync_ctx *s);

/* The workers queue updates only while the session is established (fwd.c reads l->sync_on). */
static void sync_set_established(struct sync_ctx *s, int established)
{
	s->established = established;
	__atomic_store_n(&s->l->sync_on, established, __ATOMIC_RELAXED);
}

static void sync_put_len(uint8_t *p, uint32_t n)
{
	p[0] = n >> 24;
	p[1] = n >> 16;
	p[2] = n >> 8;
	p[3] = n;
}

/* Packs and seals one message into s->ebuf; -1 if it does not fit. */
static int sync_seal(struct sync_ctx *s, Dsrlb__SyncMessage *m, int peer_accepted, size_t *elen)
{
	size_t plen;

	m->peer_accepted = peer_accepted;
	m->active = s->l->active;
	plen = dsrlb__sync_message__get_packed_size(m);
	if (plen > AUTH_MAX_MSG)
		return -1;
	dsrlb__sync_message__pack(m, s->pbuf);
	return auth_seal(s->sess, s->pbuf, plen, s->ebuf, AUTH_MAX_ENVELOPE, elen);
}

/* Seals and queues one message; -1 (counted) when the output buffer is full. */
static int sync_send(struct sync_ctx *s, Dsrlb__SyncMessage *m)
{
	size_t elen;

	if (s->fd < 0 || sync_seal(s, m, s->rx_ok, &elen) < 0)
		return -1;
	if (s->out_len + 4 + elen > SYNC_OUT_MAX && s->out_off) {
		memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
		s->out_len -= s->out_off;
		s->out_off = 0;
	}
	if (s->out_len + 4 + elen > SYNC_OUT_MAX)
		return -1;
	sync_put_len(s->out + s->out_len, (uint32_t)elen);
	memcpy(s->out + s->out_len + 4, s->ebuf, elen);
	s->out_len += 4 + elen;
	s->sent_msgs++;
	if (!s->connecting)
		ev_io_start(s->l->loop, &s->wio);
	return 0;
}

static void sync_send_simple(struct sync_ctx *s, Dsrlb__SyncType type, uint32_t cursor, uint64_t sent_ms)
{
	Dsrlb__SyncMessage m = DSRLB__SYNC_MESSAGE__INIT;

	m.type = type;
	m.cursor = cursor;
	m.sent_ms = sent_ms;
	if (type == DSRLB__SYNC_TYPE__SYNC_HELLO)
		s->hellos++;
	sync_send(s, &m);
}

static void sync_fill(Dsrlb__SyncFlow *sf, const struct flow_key *k, uint32_t backend, uint8_t state,
		      uint32_t idle_ms, int deleted)
{
	dsrlb__sync_flow__init(sf);
	sf->saddr = k->saddr;
	sf->daddr = k->daddr;
	sf->sport = ntohs(k->sport);
	sf->dport = ntohs(k->dport);
	sf->proto = k->proto;
	sf->backend = backend;
	sf->state = state;
	sf->idle_ms = idle_ms;
	sf->deleted = deleted;
}

/* Drops what the workers queued (connection gone or peer too slow): the next bulk sync repairs the peer. */
static void sync_discard_queues(struct sync_ctx *s)
{
	struct lbd *l = s->l;

	for (unsigned i = 0; i < l->n_workers; i++) {
		struct lbd_syncq *sq = worker_syncq(&l->workers[i]);
		uint32_t first, n = spsc_peek(&sq->q, &first);
		s->dropped += n;
		spsc_pop(&sq->q, n);
	}
}

/* Sends what the workers queued, a batch per message, while the output buffer takes them. */
static void sync_flush(struct sync_ctx *s)
{
	struct lbd *l = s->l;

	for (unsigned i = 0; i < l->n_workers && s->established; i++) {
		struct lbd_syncq *sq = worker_syncq(&l->workers[i]);
		uint32_t first, ready;

		while ((ready = spsc_peek(&sq->q, &first)) > 0) {
			Dsrlb__SyncMessage m = DSRLB__SYNC_MESSAGE__INIT;
			uint32_t n = 0;

			m.sent_ms = sq->rec[spsc_slot(&sq->q, first)].queued_ms;
			while (n < ready && n < SYNC_BATCH) {
				const struct lbd_sync_rec *r = &sq->rec[spsc_slot(&sq->q, first + n)];
				sync_fill(&s->msg_flows[n], &r->key, r->backend, r->state, 0, r->deleted);
				s->msg_ptrs[n] = &s->msg_flows[n];
				n++;
			}
			m.type = DSRLB__SYNC_TYPE__SYNC_UPDATE;
			m.flows = s->msg_ptrs;
			m.n_flows = n;
			if (sync_send(s, &m) < 0) {
				sync_discard_queues(s);
				return;
			}
			s->sent_flows += n;
			spsc_pop(&sq->q, n);
		}
	}
}

/* After draining: whatever a worker queued meanwhile without waking us (spsc_drained's second look). */
static int sync_queues_drained(const struct sync_ctx *s)
{
	for (unsigned i = 0; i < s->l->n_workers; i++)
		if (!spsc_drained(&worker_syncq(&s->l->workers[i])->q))
			return 0;
	return 1;
}

static void sync_flush_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct sync_ctx *s = t->data;

	if (s->established)
		sync_flush(s);
	else
		sync_discard_queues(s);
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

/* Installs one flow of the peer. While active, our own entry wins; deletions apply only on standby. */
static void sync_apply(struct sync_ctx *s, const Dsrlb__SyncFlow *sf)
{
	struct lbd *l = s->l;
	struct lbd_worker *w;
	struct dp_table *t;
	struct lbd_service *svc;
	struct lbd_backend *b;
	struct flow_key k;
	struct flow *f;
	uint64_t now = clock_ms();

	if (sf->sport > 65535 || sf->dport > 65535 || sf->proto > 255 || sf->state > FLOW_STATE_LAST)
		return;
	memset(&k, 0, sizeof(k));
	k.saddr = sf->saddr;
	k.daddr = sf->daddr;
	k.sport = htons((uint16_t)sf->sport);
	k.dport = htons((uint16_t)sf->dport);
	k.proto = (uint8_t)sf->proto;
	svc = dp_lookup_service(l, k.daddr, k.proto, k.dport);
	b = svc ? dp_find_backend(l, svc, sf->backend) : NULL;
	/* The flow belongs in the table of the worker its packets will reach. */
	w = worker_of(l, k.saddr, k.daddr, k.sport, k.dport);
	worker_lock(w);
	t = worker_table(w);
	f = flow_lookup(t->flows, &k);
	if (sf->deleted) {
		if (f && !l->active)
			dp_flow_delete(t, f);
	} else if (f && l->active) {
		/* our own entry wins while we forward */
	} else if (!b) {
		s->unknown_backend++;
	} else if (f) {
		uint16_t slot = (uint16_t)(b - l->slots);
		if (f->backend != slot)
			dp_flow_assign(t, f, slot);
		f->state = (uint8_t)sf->state;
		flow_set_idle(t->flows, f, now, sf->idle_ms);
	} else {
		f = dp_flow_insert(t, &k, (uint16_t)(b - l->slots), (uint8_t)sf->state, now);
		if (f)
			flow_set_idle(t->flows, f, now, sf->idle_ms);
		else
			l->ctr.flow_table_full++;       /* the main thread's own counters: we run there */
	}
	worker_unlock(w);
}

/* Every connection asks for the whole table from the start, even when the last transfer broke off
 * half-way: updates lost with the old connection may concern flows anywhere in the table, also below
 * the point the transfer had reached, and only a whole pass repairs them. */
static void sync_request_bulk(struct sync_ctx *s)
{
	s->bulk_received = 0;
	s->bulk_started_ms = clock_ms();
	s->bulk = BULK_REQUESTED;
	sync_send_simple(s, DSRLB__SYNC_TYPE__SYNC_BULK_REQUEST, 0, 0);
}

static void sync_record_lag(struct sync_ctx *s, uint64_t sent_ms)
{
	uint64_t now = clock_ms();

	if (!sent_ms || sent_ms > now)
		return;
	s->last_lag = (uint32_t)(now - sent_ms);
	s->lag_at[s->n_lags % SYNC_LAGS] = now;
	s->lags[s->n_lags++ % SYNC_LAGS] = s->last_lag;
}

static void sync_message(struct sync_ctx *s, const Dsrlb__SyncMessage *m)
{
	int was_established = s->established;

	s->recv_msgs++;
	s->peer_active = m->active;
	if (m->peer_accepted && !s->established) {
		sync_set_established(s, 1);
		log_info("sync with %s established", s->peer_str);
		sync_request_bulk(s);
	}
	switch (m->type) {
	case DSRLB__SYNC_TYPE__SYNC_HELLO:
		if ((!was_established || !m->peer_accepted) && s->hellos < SYNC_HELLO_MAX)
			sync_send_simple(s, DSRLB__SYNC_TYPE__SYNC_HELLO, 0, 0);
		break;
	case DSRLB__SYNC_TYPE__SYNC_UPDATE:
		for (size_t i = 0; i < m->n_flows; i++)
			sync_apply(s, m->flows[i]);
		s->recv_flows += m->n_flows;
		sync_send_simple(s, DSRLB__SYNC_TYPE__SYNC_ACK, 0, m->sent_ms);
		break;
	case DSRLB__SYNC_TYPE__SYNC_BULK_REQUEST:
		s->bulk_tx = 1;
		s->bulk_tx_cursor = m->cursor;
		sync_bulk_pump(s);
		break;
	case DSRLB__SYNC_TYPE__SYNC_BULK_CHUNK:
		if (s->bulk == BULK_NONE || s->bulk == BULK_DONE)
			break;
		s->bulk = BULK_RECEIVING;
		for (size_t i = 0; i < m->n_flows; i++)
			sync_apply(s, m->flows[i]);
		s->recv_flows += m->n_flows;
		s->bulk_received += m->n_flows;
		s->bulk_total = m->total;
		if (m->done) {
			s->bulk = BULK_DONE;
			s->bulk_done_ms = clock_ms();
			s->bulk_duration_ms = (uint32_t)(s->bulk_done_ms - s->bulk_started_ms);
			log_info("bulk sync from %s done: %" PRIu64 " flows in %u ms", s->peer_str, s->bulk_received,
				 s->bulk_duration_ms);
		}
		break;
	case DSRLB__SYNC_TYPE__SYNC_ACK:
		sync_record_lag(s, m->sent_ms);
		break;
	default:
		break;
	}
}

/* Sends the next chunks of our table while the output buffer has room; resumes from the write path.
 * The cursor names the worker in its top 4 bits and the position in that worker's table below. */
#define SYNC_CURSOR_SHIFT 28
static void sync_bulk_pump(struct sync_ctx *s)
{
	struct lbd *l = s->l;
	uint64_t now = clock_ms();

	while (s->bulk_tx && s->established && s->out_len - s->out_off < SYNC_OUT_MAX / 2) {
		Dsrlb__SyncMessage m = DSRLB__SYNC_MESSAGE__INIT;
		size_t n = 0;
		struct flow *f;
		unsigned wi = s->bulk_tx_cursor >> SYNC_CURSOR_SHIFT;
		uint32_t cursor = s->bulk_tx_cursor & ((1u << SYNC_CURSOR_SHIFT) - 1);

		while (n < SYNC_BATCH && wi < l->n_workers) {
			struct lbd_worker *w = &l->workers[wi];
			worker_lock(w);
			struct flow_table *t = worker_table(w)->flows;
			while (n < SYNC_BATCH && (f = flow_next(t, &cursor))) {
				uint32_t b = f->backend < LBD_MAX_SLOTS ? l->slots[f->backend].addr : 0;
				if (!b)
					continue;
				sync_fill(&s->msg_flows[n], &f->key, b, f->state, flow_idle_ms(t, f, now), 0);
				s->msg_ptrs[n] = &s->msg_flows[n];
				n++;
			}
			worker_unlock(w);
			if (n < SYNC_BATCH) {
				wi++;
				cursor = 0;
			}
		}
		m.type = DSRLB__SYNC_TYPE__SYNC_BULK_CHUNK;
		m.flows = s->msg_ptrs;
		m.n_flows = n;
		m.cursor = (uint32_t)wi << SYNC_CURSOR_SHIFT | cursor;
		m.total = worker_flow_count(l);
		m.done = wi >= l->n_workers;
		if (sync_send(s, &m) < 0)
			return;
		s->bulk_sent += n;
		s->bulk_tx_cursor = m.cursor;
		if (m.done)
			s->bulk_tx = 0;
	}
}

static uint32_t sync_get_len(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Handles one opened message of the session's connection. */
static void sync_dispatch(struct sync_ctx *s, size_t plen)
{
	Dsrlb__SyncMessage *m;

	s->rx_ok = 1;
	m = dsrlb__sync_message__unpack(NULL, plen, s->plain);
	if (!m) {
		s->rejected++;
		log_rl(LOG_LVL_WARN, "sync from %s: authentic message does not parse", s->peer_str);
		return;
	}
	sync_message(s, m);
	dsrlb__sync_message__free_unpacked(m, NULL);
}

/* Handles the whole frames in the session's input buffer and keeps the rest; -1 once the connection
 * is closed. */
static int sync_frames(struct sync_ctx *s)
{
	size_t off = 0;

	while (s->in_len - off >= 4) {
		const uint8_t *p = s->in + off;
		uint32_t len = sync_get_len(p);
		size_t plen;
		enum auth_result r;

		if (len > AUTH_MAX_ENVELOPE) {
			s->rejected++;
			s->oversized++;
			sync_close(s, "oversized frame");
			return -1;
		}
		if (s->in_len - off < 4 + (size_t)len)
			break;
		off += 4 + len;
		r = auth_open(s->sess, p + 4, len, s->plain, AUTH_MAX_MSG, &plen);
		if (r == AUTH_STALE_EPOCH) {
			/* During the handshake: a restarted peer, let it learn our challenge. Once
			 * established: a recording of an older epoch. */
			if (s->established)
				s->rejected++;
			else if (s->hellos < SYNC_HELLO_MAX)
				sync_send_simple(s, DSRLB__SYNC_TYPE__SYNC_HELLO, 0, 0);
			continue;
		}
		if (r != AUTH_OK) {
			s->rejected++;
			log_rl(LOG_LVL_WARN, "sync from %s: frame rejected: %s", s->peer_str, auth_result_str(r));
			continue;
		}
		sync_dispatch(s, plen);
		if (s->fd < 0)
			return -1;
	}
	memmove(s->in, s->in + off, s->in_len - off);
	s->in_len -= off;
	return 0;
}

static void sync_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync_ctx *s = w->data;

	for (int rounds = 0; rounds < 64; rounds++) {
		ssize_t n = recv(s->fd, s->in + s->in_len, SYNC_FRAME_MAX - s->in_len, 0);
		if (n == 0) {
			sync_close(s, "peer closed the connection");
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			sync_close(s, strerror(errno));
			return;
		}
		s->in_len += (size_t)n;
		if (sync_frames(s) < 0)
			return;
	}
}

/* The connection in s->fd is the session's from now on. */
static void sync_connected(struct sync_ctx *s, int hello)
{
	ev_timer_stop(s->l->loop, &s->retry);
	if (s->initiator) {
		/* The far end must authenticate within the deadline (sync_retry_cb checks). */
		ev_timer_set(&s->retry, SYNC_HANDSHAKE_S, 0.);
		ev_timer_start(s->l->loop, &s->retry);
	}
	s->connecting = 0;
	sync_set_established(s, 0);
	s->rx_ok = 0;
	s->hellos = 0;
	s->in_len = 0;
	s->out_len = s->out_off = 0;
	ev_io_init(&s->rio, sync_read_cb, s->fd, EV_READ);
	s->rio.data = s;
	ev_io_start(s->l->loop, &s->rio);
	if (hello)
		sync_send_simple(s, DSRLB__SYNC_TYPE__SYNC_HELLO, 0, 0);
}

static void sync_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync_ctx *s = w->data;

	if (s->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		ev_io_stop(loop, w);
		if (err) {
			sync_close(s, strerror(err));
			return;
		}
		sync_connected(s, 1);
		return;
	}
	while (s->out_off < s->out_len) {
		ssize_t n = send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			sync_close(s, strerror(errno));
			return;
		}
		s->out_off += (size_t)n;
	}
	s->out_off = s->out_len = 0;
	ev_io_stop(loop, w);
	/* Updates go out from the flush timer, in batches; only the bulk transfer continues here. */
	sync_bulk_pump(s);
}

static void sync_setup_fd(struct sync_ctx *s, int fd)
{
	int one = 1, idle = 2, intvl = 1, cnt = 2, uto = (int)s->l->cfg->sync_peer_timeout_ms;

	/* Notice a dead or silently vanished peer within seconds (sync_peer_timeout: data left unacknowledged
	 * that long, or keepalives unanswered), so the next connection (and its bulk transfer) starts soon. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
	s->fd = fd;
	ev_io_init(&s->wio, sync_write_cb, fd, EV_WRITE);
	s->wio.data = s;
}

static void sync_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sync_ctx *s = w->data;
	struct sockaddr_in sin;
	int fd;

	/* A connect still pending after SYNC_CONNECT_S: the peer was away when the SYN went out, and the
	 * kernel's own retries back off to many seconds. Start over instead. */
	if (s->fd >= 0 && s->connecting) {
		sync_close(s, "connect timed out");
		return;
	}
	/* Connected, but nothing authentic came back: not our peer (or not yet a working one). */
	if (s->fd >= 0 && !s->rx_ok) {
		s->unauthenticated++;
		s->handshake_timeouts++;
		sync_close(s, "no authentic message within the handshake deadline");
		return;
	}
	if (s->fd >= 0 || !s->initiator)
		return;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto again;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = s->self_addr;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		goto again;
	}
	sin.sin_addr.s_addr = s->peer_addr;
	sin.sin_port = htons(s->port);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno != EINPROGRESS) {
		close(fd);
		goto again;
	}
	sync_setup_fd(s, fd);
	s->connecting = 1;
	ev_io_start(loop, &s->wio);
	ev_timer_set(w, SYNC_CONNECT_S, 0.);
	ev_timer_start(loop, w);
	return;
again:
	ev_timer_set(w, SYNC_RETRY_S, 0.);
	ev_timer_start(loop, w);
}

static void sync_close(struct sync_ctx *s, const char *why)
{
	struct ev_loop *loop = s->l->loop;

	if (s->fd < 0)
		return;
	if (s->established || !s->connecting)
		log_rl(LOG_LVL_WARN, "sync with %s closed: %s", s->peer_str, why);
	ev_io_stop(loop, &s->rio);
	ev_io_stop(loop, &s->wio);
	close(s->fd);
	s->fd = -1;
	sync_set_established(s, 0);
	s->connecting = 0;
	s->bulk_tx = 0;
	sync_discard_queues(s);
	s->reconnects++;
	if (s->initiator) {
		/* Whatever the timer was waiting for (connect, handshake) went with the connection. */
		ev_timer_stop(loop, &s->retry);
		ev_timer_set(&s->retry, SYNC_RETRY_S, 0.);
		ev_timer_start(loop, &s->retry);
	}
}

/* Closes the pending connection, which never authenticated; counted. */
static void sync_pending_close(struct sync_ctx *s, const char *why)
{
	struct sync_pending *p = &s->pend;

	if (p->fd < 0)
		return;
	log_rl(LOG_LVL_WARN, "sync: unauthenticated connection from %s closed: %s", s->peer_str, why);
	ev_io_stop(s->l->loop, &p->rio);
	ev_timer_stop(s->l->loop, &p->deadline);
	close(p->fd);
	p->fd = -1;
	p->in_len = 0;
	s->unauthenticated++;
}

static void sync_pending_deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct sync_ctx *s = t->data;

	s->handshake_timeouts++;
	sync_pending_close(s, "no authentic message within the handshake deadline");
}

/* A HELLO on the pending connection, straight to the socket (the output buffer is the session's):
 * tells a restarted peer our challenge. -1 when the socket does not take it whole. */
static int sync_pending_hello(struct sync_ctx *s)
{
	Dsrlb__SyncMessage m = DSRLB__SYNC_MESSAGE__INIT;
	uint8_t hdr[4];
	size_t elen;
	struct iovec iov[2];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

	m.type = DSRLB__SYNC_TYPE__SYNC_HELLO;
	if (sync_seal(s, &m, 0, &elen) < 0)
		return -1;
	sync_put_len(hdr, (uint32_t)elen);
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ s->ebuf, elen };
	s->pend.hellos++;
	s->sent_msgs++;
	return sendmsg(s->pend.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)(4 + elen) ? 0 : -1;
}

/* The pending connection sent an authentic message (opened into s->plain, plen bytes, the first
 * `used` bytes of its buffer consumed): it becomes the session, replacing the old connection. */
static void sync_promote(struct sync_ctx *s, size_t used, size_t plen)
{
	struct sync_pending *p = &s->pend;
	uint8_t *in = s->in;
	int fd = p->fd, hellos = p->hellos;
	size_t rest = p->in_len - used;

	ev_io_stop(s->l->loop, &p->rio);
	ev_timer_stop(s->l->loop, &p->deadline);
	p->fd = -1;
	if (s->fd >= 0)
		sync_close(s, "replaced by an authenticated new connection");
	log_info("sync: new connection from %s authenticated", s->peer_str);
	sync_setup_fd(s, fd);
	sync_connected(s, 0);
	s->hellos = hellos;
	/* The rest of what arrived goes with the session: swap the buffers. */
	memmove(p->in, p->in + used, rest);
	s->in = p->in;
	s->in_len = rest;
	p->in = in;
	p->in_len = 0;
	sync_dispatch(s, plen);
	if (s->fd >= 0)
		sync_frames(s);
}

static void sync_pending_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync_ctx *s = w->data;
	struct sync_pending *p = &s->pend;

	for (int rounds = 0; rounds < 4; rounds++) {
		ssize_t n = recv(p->fd, p->in + p->in_len, SYNC_FRAME_MAX - p->in_len, 0);
		size_t off = 0;

		if (n == 0) {
			sync_pending_close(s, "closed by the far end");
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			sync_pending_close(s, strerror(errno));
			return;
		}
		p->in_len += (size_t)n;
		while (p->in_len - off >= 4) {
			uint32_t len = sync_get_len(p->in + off);
			size_t plen;
			enum auth_result r;

			if (len > AUTH_MAX_ENVELOPE) {
				s->rejected++;
				s->oversized++;
				sync_pending_close(s, "oversized frame");
				return;
			}
			if (p->in_len - off < 4 + (size_t)len)
				break;
			r = auth_open(s->sess, p->in + off + 4, len, s->plain, AUTH_MAX_MSG, &plen);
			off += 4 + len;
			if (r == AUTH_OK) {
				sync_promote(s, off, plen);
				return;
			}
			if (r == AUTH_STALE_EPOCH) {
				/* A restarted peer: tell it our challenge. */
				if (p->hellos < SYNC_HELLO_MAX && sync_pending_hello(s) < 0) {
					sync_pending_close(s, "does not read");
					return;
				}
				continue;
			}
			s->rejected++;
			log_rl(LOG_LVL_WARN, "sync from %s: frame rejected: %s", s->peer_str, auth_result_str(r));
		}
		memmove(p->in, p->in + off, p->in_len - off);
		p->in_len -= off;
	}
}

/* Only the peer's address may connect; its connection waits as pending until it authenticates. */
static void sync_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync_ctx *s = w->data;
	struct sync_pending *p = &s->pend;
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	int fd = accept4(s->listen_fd, (struct sockaddr *)&from, &flen, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (from.sin_addr.s_addr != s->peer_addr) {
		s->rejected++;
		s->refused_not_peer++;
		log_rl(LOG_LVL_WARN, "sync: connection from %s refused: not our peer", inet_ntoa(from.sin_addr));
		close(fd);
		return;
	}
	/* At most one pending connection: the newest, so a silent one cannot keep a restarted peer out. */
	sync_pending_close(s, "replaced by a newer connection");
	p->fd = fd;
	p->in_len = 0;
	p->hellos = 0;
	ev_io_init(&p->rio, sync_pending_read_cb, fd, EV_READ);
	p->rio.data = s;
	ev_io_start(loop, &p->rio);
	ev_timer_set(&p->deadline, SYNC_HANDSHAKE_S, 0.);
	ev_timer_start(loop, &p->deadline);
}

struct sync_ctx *sync_create(struct lbd *l)
{
	const struct cfg_node *self, *peer;
	struct sync_ctx *s;
	struct sockaddr_in sin;
	char err[512];
	int one = 1;

	if (!l->cfg->sync)
		return NULL;
	self = cfg_find_node(l->cfg, l->node, err, sizeof(err));
	peer = self ? cfg_peer(l->cfg, self) : NULL;
	if (!peer)
		return NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	s->l = l;
	s->fd = -1;
	s->pend.fd = -1;
	s->listen_fd = -1;
	s->self_addr = self->addr.s_addr;
	s->peer_addr = peer->addr.s_addr;
	s->port = l->cfg->sync_port;
	s->initiator = ntohl(s->self_addr) < ntohl(s->peer_addr);
	s->start_ms = clock_ms();
	inet_ntop(AF_INET, &peer->addr, s->peer_str, sizeof(s->peer_str));
	s->keys = startup_keys(l->cfg, l->gid, err, sizeof(err));
	if (!s->keys) {
		log_err("sync: %s", err);
		goto fail;
	}
	s->sess = auth_session_create(s->keys, AUTH_KIND_SYNC, self->name, peer->name);
	s->in = malloc(SYNC_FRAME_MAX);
	s->pend.in = malloc(SYNC_FRAME_MAX);
	s->out = malloc(SYNC_OUT_MAX);
	s->pbuf = malloc(AUTH_MAX_MSG);
	s->ebuf = malloc(AUTH_MAX_ENVELOPE);
	s->plain = malloc(AUTH_MAX_MSG);
	if (!s->sess || !s->in || !s->pend.in || !s->out || !s->pbuf || !s->ebuf || !s->plain) {
		log_err("%s: out of memory", __func__);
		goto fail;
	}
	ev_init(&s->retry, sync_retry_cb);
	ev_init(&s->flush, sync_flush_cb);
	ev_async_init(&s->wake, sync_wake_cb);
	ev_init(&s->pend.deadline, sync_pending_deadline_cb);
	s->retry.data = s->flush.data = s->wake.data = s->pend.deadline.data = s;
	ev_async_start(l->loop, &s->wake);
	l->sync_wake = &s->wake;
	s->flush.repeat = SYNC_FLUSH_S;
	ev_timer_set(&s->flush, SYNC_FLUSH_S, 0.);
	if (!s->initiator) {
		s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s->listen_fd < 0)
			goto fail;
		setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = s->self_addr;
		sin.sin_port = htons(s->port);
		if (bind(s->listen_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(s->listen_fd, SYNC_BACKLOG) < 0) {
			log_err("sync: listen on %s:%u: %s", inet_ntoa(sin.sin_addr), s->port, strerror(errno));
			goto fail;
		}
		ev_io_init(&s->listen_io, sync_accept_cb, s->listen_fd, EV_READ);
		s->listen_io.data = s;
		ev_io_start(l->loop, &s->listen_io);
	} else {
		ev_timer_set(&s->retry, 0., 0.);
		ev_timer_start(l->loop, &s->retry);
	}
	return s;
fail:
	sync_destroy(s);
	return NULL;
}

void sync_destroy(struct sync_ctx *s)
{
	if (!s)
		return;
	if (s->l->sync_wake == &s->wake)
		s->l->sync_wake = NULL;
	if (s->l->loop) {
		ev_timer_stop(s->l->loop, &s->retry);
		ev_timer_stop(s->l->loop, &s->flush);
		ev_async_stop(s->l->loop, &s->wake);
		if (s->listen_fd >= 0)
			ev_io_stop(s->l->loop, &s->listen_io);
	}
	sync_pending_close(s, "stopping");
	sync_close(s, "stopping");
	ev_timer_stop(s->l->loop, &s->retry);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	auth_session_destroy(s->sess);
	auth_keyring_destroy(s->keys);
	free(s->in);
	free(s->pend.in);
	free(s->out);
	free(s->pbuf);
	free(s->ebuf);
	free(s->plain);
	free(s);
}

void sync_reload(struct sync_ctx *s, struct auth_keyring *keys)
{
	auth_session_set_keyring(s->sess, keys);
	auth_keyring_destroy(s->keys);
	s->keys = keys;
}

int sync_ready(const struct sync_ctx *s)
{
	if (!s)
		return 1;
	return s->bulk == BULK_DONE || clock_ms() - s->start_ms >= s->l->cfg->sync_timeout_ms;
}

const char *sync_state_str(const struct sync_ctx *s)
{
	if (!s)
		return "disabled";
	if (s->fd < 0 && s->pend.fd >= 0)
		return "handshake";
	if (s->fd < 0 || s->connecting)
		return "connecting";
	return s->established ? "established" : "handshake";
}

static int sync_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

void sync_status(struct sync_ctx *s, Dsrlb__SyncStatus *st)
{
	static const char *bulk_names[] = { "none", "requested", "receiving", "done" };
	uint64_t now = clock_ms();

	st->state = (char *)sync_state_str(s);
	if (!s)
		return;
	st->peer = s->peer_str;
	st->last_lag_ms = s->last_lag;
	/* p99 of the updates acknowledged in the last SYNC_LAG_WINDOW_MS: what the lag is now, not what
	 * a bulk transfer or a reconnect did to it minutes ago. */
	uint32_t kept = s->n_lags < SYNC_LAGS ? s->n_lags : SYNC_LAGS, n = 0;
	for (uint32_t i = 0; i < kept; i++)
		if (now - s->lag_at[i] <= SYNC_LAG_WINDOW_MS)
			s->lags_sorted[n++] = s->lags[i];
	st->lag_samples = n;
	if (n) {
		qsort(s->lags_sorted, n, sizeof(uint32_t), sync_cmp_u32);
		st->lag_p99_ms = s->lags_sorted[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
	}
	st->bulk_state = (char *)(s->bulk != BULK_DONE && now - s->start_ms >= s->l->cfg->sync_timeout_ms
				  ? "timeout" : bulk_names[s->bulk]);
	st->bulk_received = s->bulk_received;
	st->bulk_total = s->bulk_total;
	st->bulk_done_ms_ago = s->bulk == BULK_DONE ? (int64_t)(now - s->bulk_done_ms) : -1;
	st->bulk_duration_ms = s->bulk_duration_ms;
	st->sent_flows = s->sent_flows;
	st->received_flows = s->recv_flows;
	st->sent_messages = s->sent_msgs;
	st->received_messages = s->recv_msgs;
	st->rejected = s->rejected;
	struct lbd_counters c;
	worker_counters(s->l, &c);
	st->dropped = s->dropped + c.sync_dropped;
	st->unknown_backend = s->unknown_backend;
	st->reconnects = s->reconnects;
	st->bulk_sent = s->bulk_sent;
	st->refused_not_peer = s->refused_not_peer;
	st->unauthenticated = s->unauthenticated;
	st->handshake_timeouts = s->handshake_timeouts;
	st->oversized = s->oversized;
	st->peer_active = s->peer_active;
	st->ready = sync_ready(s);
}
