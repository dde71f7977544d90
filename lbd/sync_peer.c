/* Connection-state sync with one other node: its TCP connection, the handshake, who may take the
 * session, the buffers, the bulk transfers both ways, lag samples, NODE_STATE and the counters.
 * sync.c holds one of these per other node of the config and fans our updates out to them.
 *
 * Transport: one TCP connection per pair of nodes, opened by the node with the lower address and
 * accepted only from the peer's address. Each frame is a 4-byte big-endian length and an Envelope
 * (common/auth.h, kind SYNC) sealing one SyncMessage (proto/sync.proto). TCP gives order and
 * retransmission while a connection lives; every new connection starts with a bulk transfer of the
 * whole table, which fills whatever was lost with the old one. So there are no permanent holes without
 * a sequence/ack scheme of our own.
 *
 * Handshake: the envelope accepts a new epoch of the peer only when it echoes our current challenge
 * (replay protection across restarts). Both sides send HELLO on connect and answer a HELLO with a
 * HELLO while they are not yet established or the peer has not yet accepted them; `peer_accepted`
 * says "a message of yours was accepted on this connection". A side is established once an accepted
 * message says it was accepted; only then are updates, bulk requests and NODE_STATE sent, so none is
 * rejected as stale.
 *
 *   connect ──HELLO──► ◄──HELLO── (stale: learn challenge) ──HELLO(pa)──► established ◄──HELLO(pa)──
 *
 * Who may take the session. The accepting side keeps its connection until a newer one from the
 * peer's address has *authenticated* (sent its first authentic message): a connection from the peer's
 * address is only pending until then, one at a time (a newer pending connection replaces an older
 * one, never the session), and is closed at the handshake deadline. sync.c closes connections from
 * any other address at once. Without this, any process on the peer node (or a host spoofing its
 * address) could cut the session with an empty connection. The connecting side closes its own
 * connection when the far end has not authenticated by the same deadline, and tries again.
 *
 *   accept ─► (sync.c) not a member: closed, counted
 *          └► the peer's address ─► pending ──first authentic message──► the session (the old one closed)
 *                                        └──deadline, a newer pending one, oversized frame, EOF──► closed, counted
 *
 * Transport over the node addresses of either family (all nodes share one): AF_INET or AF_INET6
 * sockets, bound to our node address; "lower" compares the addresses as 16 bytes in network order (for
 * IPv4, as ever, the 32-bit address), so both ends agree on who connects.
 *
 * Memory one peer costs: an input buffer of one frame (SYNC_FRAME_MAX) for the session and one for the
 * pending connection; a length prefix above the largest frame closes the connection at once. The
 * pending connection sends only HELLOs, straight to the socket; the output buffer (sh->out_max) belongs
 * to the authenticated session alone, and when it is full updates for this peer are dropped and counted
 * (its next bulk transfer repairs it): forwarding never waits. */
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

#include "clock.h"
#include "control.pb-c.h"
#include "lbd.h"
#include "log.h"
#include "sync_peer.h"

#define SYNC_RETRY_S      0.2
#define SYNC_CONNECT_S    1.0
#define SYNC_HELLO_MAX    16                /* per connection: the handshake needs 2 or 3 */
#define SYNC_HANDSHAKE_S  2.0               /* a connection's first authentic message is due within */

static void sync_peer_close(struct sync_peer *p, const char *why);
static void sync_peer_bulk_pump(struct sync_peer *p);
static int sync_peer_frames(struct sync_peer *p);

/* The workers queue updates while at least one peer is established (fwd.c reads l->sync_on). When the
 * last one goes, what they queued meanwhile has nobody to go to: dropped, so the queues start empty. */
static void sync_peer_set_established(struct sync_peer *p, int established)
{
	struct sync_shared *sh = p->sh;

	if (p->established == established)
		return;
	p->established = established;
	sh->n_established += established ? 1 : -1;
	__atomic_store_n(&sh->l->sync_on, sh->n_established > 0, __ATOMIC_RELAXED);
	if (!sh->n_established)
		sh->dropped += sync_table_discard(sh->l);
}

static void sync_put_len(uint8_t *b, uint32_t n)
{
	b[0] = n >> 24;
	b[1] = n >> 16;
	b[2] = n >> 8;
	b[3] = n;
}

static uint32_t sync_get_len(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Packs and seals one message into sh->ebuf; -1 if it does not fit. */
static int sync_peer_seal(struct sync_peer *p, Dsrlb__SyncMessage *m, int peer_accepted, size_t *elen)
{
	struct sync_shared *sh = p->sh;
	size_t plen;

	m->peer_accepted = peer_accepted;
	m->active = sh->l->active;
	plen = dsrlb__sync_message__get_packed_size(m);
	if (plen > AUTH_MAX_MSG)
		return -1;
	dsrlb__sync_message__pack(m, sh->pbuf);
	return auth_seal(p->sess, sh->pbuf, plen, sh->ebuf, AUTH_MAX_ENVELOPE, elen);
}

int sync_peer_send(struct sync_peer *p, Dsrlb__SyncMessage *m)
{
	size_t elen, max = p->sh->out_max;

	if (p->fd < 0 || sync_peer_seal(p, m, p->rx_ok, &elen) < 0)
		return -1;
	if (p->out_len + 4 + elen > max && p->out_off) {
		memmove(p->out, p->out + p->out_off, p->out_len - p->out_off);
		p->out_len -= p->out_off;
		p->out_off = 0;
	}
	if (p->out_len + 4 + elen > max)
		return -1;
	sync_put_len(p->out + p->out_len, (uint32_t)elen);
	memcpy(p->out + p->out_len + 4, p->sh->ebuf, elen);
	p->out_len += 4 + elen;
	p->sent_msgs++;
	if (!p->connecting)
		ev_io_start(p->sh->l->loop, &p->wio);
	return 0;
}

static void sync_peer_send_simple(struct sync_peer *p, Dsrlb__SyncType type, uint64_t sent_ms)
{
	Dsrlb__SyncMessage m = DSRLB__SYNC_MESSAGE__INIT;

	m.type = type;
	m.sent_ms = sent_ms;
	if (type == DSRLB__SYNC_TYPE__SYNC_HELLO)
		p->hellos++;
	sync_peer_send(p, &m);
}

void sync_peer_send_state(struct sync_peer *p)
{
	const struct sync_node_state *self = &p->sh->self;
	Dsrlb__SyncMessage m = DSRLB__SYNC_MESSAGE__INIT;
	Dsrlb__SyncNodeState ns = DSRLB__SYNC_NODE_STATE__INIT;

	if (!p->established)
		return;
	ns.name = (char *)p->sh->self_name;
	ns.forwarding = self->forwarding;
	ns.announced = self->announced;
	ns.announce_why = (char *)self->why;
	ns.flows = self->flows;
	ns.config_digest.data = (uint8_t *)self->digest;
	ns.config_digest.len = sizeof(self->digest);
	ns.bulk_done = p->bulk == BULK_DONE;
	m.type = DSRLB__SYNC_TYPE__SYNC_NODE_STATE;
	m.node = &ns;
	sync_peer_send(p, &m);
}

/* Keeps what the peer said about itself; its strings are untrusted text for a terminal. */
static void sync_peer_take_state(struct sync_peer *p, const Dsrlb__SyncNodeState *ns)
{
	struct sync_node_state *r = &p->remote;
	size_t i = 0;

	r->forwarding = ns->forwarding;
	r->announced = ns->announced;
	r->flows = ns->flows;
	for (const char *c = ns->announce_why ? ns->announce_why : ""; *c && i < sizeof(r->why) - 1; c++)
		r->why[i++] = *c >= 0x20 && *c < 0x7f ? *c : '?';
	r->why[i] = 0;
	memset(r->digest, 0, sizeof(r->digest));
	if (ns->config_digest.len == sizeof(r->digest))
		memcpy(r->digest, ns->config_digest.data, sizeof(r->digest));
	p->remote_has_our_bulk = ns->bulk_done;
	p->remote_at_ms = clock_ms();
}

/* Every connection asks for the whole table from the start, even when the last transfer broke off
 * half-way: updates lost with the old connection may concern flows anywhere in the table, also below
 * the point the transfer had reached, and only a whole pass repairs them. */
static void sync_peer_request_bulk(struct sync_peer *p)
{
	p->bulk_received = 0;
	p->bulk_started_ms = clock_ms();
	p->bulk = BULK_REQUESTED;
	sync_peer_send_simple(p, DSRLB__SYNC_TYPE__SYNC_BULK_REQUEST, 0);
}

static void sync_peer_record_lag(struct sync_peer *p, uint64_t sent_ms)
{
	uint64_t now = clock_ms();

	if (!sent_ms || sent_ms > now)
		return;
	p->last_lag = (uint32_t)(now - sent_ms);
	p->last_lag_ms_at = now;
	p->lag_at[p->n_lags % SYNC_LAGS] = now;
	p->lags[p->n_lags++ % SYNC_LAGS] = p->last_lag;
}

/* Each flow decoded (refused ones counted and dropped: an authentic peer with a bug, or another version,
 * must not bring us down) and installed. */
static void sync_peer_apply(struct sync_peer *p, const Dsrlb__SyncMessage *m)
{
	for (size_t i = 0; i < m->n_flows; i++) {
		struct sync_flow_rec r;
		const char *why = sync_table_decode(m->flows[i], &r);

		if (why) {
			p->bad_flows++;
			log_rl(LOG_LVL_WARN, "sync from %s: flow refused: %s", p->name, why);
			continue;
		}
		switch (sync_table_apply(p->sh->l, &r)) {
		case SYNC_APPLY_UNKNOWN_BACKEND:
			p->unknown_backend++;
			break;
		case SYNC_APPLY_NO_IPV6:
			p->no_ipv6++;
			log_rl(LOG_LVL_WARN, "sync from %s: IPv6 flow dropped: no IPv6 service here", p->name);
			break;
		case SYNC_APPLY_DONE:
			break;
		}
	}
	p->recv_flows += m->n_flows;
}

static void sync_peer_message(struct sync_peer *p, const Dsrlb__SyncMessage *m)
{
	int was_established = p->established;

	p->recv_msgs++;
	p->peer_active = m->active;
	if (m->peer_accepted && !p->established) {
		sync_peer_set_established(p, 1);
		log_info("sync with %s (%s) established", p->name, p->addr_str);
		sync_peer_request_bulk(p);
		sync_peer_send_state(p);
	}
	switch (m->type) {
	case DSRLB__SYNC_TYPE__SYNC_HELLO:
		if ((!was_established || !m->peer_accepted) && p->hellos < SYNC_HELLO_MAX)
			sync_peer_send_simple(p, DSRLB__SYNC_TYPE__SYNC_HELLO, 0);
		break;
	case DSRLB__SYNC_TYPE__SYNC_UPDATE:
		sync_peer_apply(p, m);
		sync_peer_send_simple(p, DSRLB__SYNC_TYPE__SYNC_ACK, m->sent_ms);
		break;
	case DSRLB__SYNC_TYPE__SYNC_BULK_REQUEST:
		p->bulk_tx = 1;
		p->bulk_tx_sent = 0;
		p->bulk_tx_cursor = m->cursor;
		p->remote_has_our_bulk = 0;
		sync_peer_bulk_pump(p);
		break;
	case DSRLB__SYNC_TYPE__SYNC_BULK_CHUNK:
		if (p->bulk == BULK_NONE || p->bulk == BULK_DONE)
			break;
		p->bulk = BULK_RECEIVING;
		sync_peer_apply(p, m);
		p->bulk_received += m->n_flows;
		p->bulk_total = m->total;
		if (m->done) {
			p->bulk = BULK_DONE;
			p->bulk_done_ms = clock_ms();
			p->bulk_duration_ms = (uint32_t)(p->bulk_done_ms - p->bulk_started_ms);
			log_info("bulk sync from %s done: %" PRIu64 " flows in %u ms", p->name, p->bulk_received,
				 p->bulk_duration_ms);
			sync_peer_send_state(p);
		}
		break;
	case DSRLB__SYNC_TYPE__SYNC_ACK:
		sync_peer_record_lag(p, m->sent_ms);
		break;
	case DSRLB__SYNC_TYPE__SYNC_NODE_STATE:
		if (m->node)
			sync_peer_take_state(p, m->node);
		break;
	default:
		break;
	}
}

/* Sends the next chunks of our table while the output buffer has room; resumes from the write path. */
static void sync_peer_bulk_pump(struct sync_peer *p)
{
	struct sync_shared *sh = p->sh;

	while (p->bulk_tx && p->established && p->out_len - p->out_off < sh->out_max / 2) {
		Dsrlb__SyncMessage m = DSRLB__SYNC_MESSAGE__INIT;
		uint32_t cursor = p->bulk_tx_cursor;
		int done;
		size_t n = sync_table_chunk(sh, &cursor, &done);

		m.type = DSRLB__SYNC_TYPE__SYNC_BULK_CHUNK;
		m.flows = sh->msg_ptrs;
		m.n_flows = n;
		m.cursor = cursor;
		m.total = worker_flow_count(sh->l);
		m.done = done;
		if (sync_peer_send(p, &m) < 0)
			return;
		p->bulk_sent += n;
		p->bulk_tx_cursor = cursor;
		if (done) {
			p->bulk_tx = 0;
			p->bulk_tx_sent = 1;
		}
	}
}

/* Handles one opened message (in sh->plain) of the session's connection. */
static void sync_peer_dispatch(struct sync_peer *p, size_t plen)
{
	Dsrlb__SyncMessage *m;

	p->rx_ok = 1;
	m = dsrlb__sync_message__unpack(NULL, plen, p->sh->plain);
	if (!m) {
		p->rejected++;
		log_rl(LOG_LVL_WARN, "sync from %s: authentic message does not parse", p->name);
		return;
	}
	sync_peer_message(p, m);
	dsrlb__sync_message__free_unpacked(m, NULL);
}

/* Handles the whole frames in the session's input buffer and keeps the rest; -1 once the connection
 * is closed. */
static int sync_peer_frames(struct sync_peer *p)
{
	size_t off = 0;

	while (p->in_len - off >= 4) {
		const uint8_t *b = p->in + off;
		uint32_t len = sync_get_len(b);
		size_t plen;
		enum auth_result r;

		if (len > AUTH_MAX_ENVELOPE) {
			p->rejected++;
			p->oversized++;
			sync_peer_close(p, "oversized frame");
			return -1;
		}
		if (p->in_len - off < 4 + (size_t)len)
			break;
		off += 4 + len;
		r = auth_open(p->sess, b + 4, len, p->sh->plain, AUTH_MAX_MSG, &plen);
		if (r == AUTH_STALE_EPOCH) {
			/* During the handshake: a restarted peer, let it learn our challenge. Once
			 * established: a recording of an older epoch. */
			if (p->established)
				p->rejected++;
			else if (p->hellos < SYNC_HELLO_MAX)
				sync_peer_send_simple(p, DSRLB__SYNC_TYPE__SYNC_HELLO, 0);
			continue;
		}
		if (r != AUTH_OK) {
			p->rejected++;
			log_rl(LOG_LVL_WARN, "sync from %s: frame rejected: %s", p->name, auth_result_str(r));
			continue;
		}
		sync_peer_dispatch(p, plen);
		if (p->fd < 0)
			return -1;
	}
	memmove(p->in, p->in + off, p->in_len - off);
	p->in_len -= off;
	return 0;
}

/* One recv() onto the end of a connection's input buffer: 1 when bytes came, 0 when there are none now,
 * -1 when the connection is over (*why says how). */
static int sync_peer_recv(int fd, uint8_t *in, size_t *in_len, const char **why)
{
	ssize_t n = recv(fd, in + *in_len, SYNC_FRAME_MAX - *in_len, 0);

	if (n > 0) {
		*in_len += (size_t)n;
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	*why = n == 0 ? "closed by the far end" : strerror(errno);
	return -1;
}

static void sync_peer_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync_peer *p = w->data;
	const char *why;

	for (int rounds = 0; rounds < 64; rounds++) {
		int r = sync_peer_recv(p->fd, p->in, &p->in_len, &why);

		if (r < 0)
			sync_peer_close(p, why);
		if (r <= 0 || sync_peer_frames(p) < 0)
			return;
	}
}

/* The connection in p->fd is the session's from now on. */
static void sync_peer_connected(struct sync_peer *p, int hello)
{
	struct ev_loop *loop = p->sh->l->loop;

	ev_timer_stop(loop, &p->retry);
	if (p->initiator) {
		/* The far end must authenticate within the deadline (sync_peer_retry_cb checks). */
		ev_timer_set(&p->retry, SYNC_HANDSHAKE_S, 0.);
		ev_timer_start(loop, &p->retry);
	}
	p->connecting = 0;
	sync_peer_set_established(p, 0);
	p->rx_ok = 0;
	p->hellos = 0;
	p->in_len = 0;
	p->out_len = p->out_off = 0;
	p->remote_has_our_bulk = 0;
	ev_io_init(&p->rio, sync_peer_read_cb, p->fd, EV_READ);
	p->rio.data = p;
	ev_io_start(loop, &p->rio);
	if (hello)
		sync_peer_send_simple(p, DSRLB__SYNC_TYPE__SYNC_HELLO, 0);
}

static void sync_peer_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync_peer *p = w->data;

	if (p->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		ev_io_stop(loop, w);
		if (err) {
			sync_peer_close(p, strerror(err));
			return;
		}
		sync_peer_connected(p, 1);
		return;
	}
	while (p->out_off < p->out_len) {
		ssize_t n = send(p->fd, p->out + p->out_off, p->out_len - p->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			sync_peer_close(p, strerror(errno));
			return;
		}
		p->out_off += (size_t)n;
	}
	p->out_off = p->out_len = 0;
	ev_io_stop(loop, w);
	/* Updates go out from the flush timer, in batches; only the bulk transfer continues here. */
	sync_peer_bulk_pump(p);
}

static void sync_peer_setup_fd(struct sync_peer *p, int fd)
{
	int one = 1, idle = 2, intvl = 1, cnt = 2, uto = (int)p->sh->l->cfg->sync_peer_timeout_ms;

	/* Notice a dead or silently vanished peer within seconds (sync_peer_timeout: data left unacknowledged
	 * that long, or keepalives unanswered), so the next connection (and its bulk transfer) starts soon. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
	p->fd = fd;
	ev_io_init(&p->wio, sync_peer_write_cb, fd, EV_WRITE);
	p->wio.data = p;
}

static void sync_peer_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sync_peer *p = w->data;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	/* A connect still pending after SYNC_CONNECT_S: the peer was away when the SYN went out, and the
	 * kernel's own retries back off to many seconds. Start over instead. */
	if (p->fd >= 0 && p->connecting) {
		sync_peer_close(p, "connect timed out");
		return;
	}
	/* Connected, but nothing authentic came back: not our peer (or not yet a working one). */
	if (p->fd >= 0 && !p->rx_ok) {
		p->unauthenticated++;
		p->handshake_timeouts++;
		sync_peer_close(p, "no authentic message within the handshake deadline");
		return;
	}
	if (p->fd >= 0 || !p->initiator)
		return;
	/* From our node address (the peer accepts only that), to the peer's. */
	len = ipaddr_sockaddr(&p->self_addr, 0, &ss);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto again;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		close(fd);
		goto again;
	}
	len = ipaddr_sockaddr(&p->addr, p->port, &ss);
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
		close(fd);
		goto again;
	}
	sync_peer_setup_fd(p, fd);
	p->connecting = 1;
	ev_io_start(loop, &p->wio);
	ev_timer_set(w, SYNC_CONNECT_S, 0.);
	ev_timer_start(loop, w);
	return;
again:
	ev_timer_set(w, SYNC_RETRY_S, 0.);
	ev_timer_start(loop, w);
}

static void sync_peer_close(struct sync_peer *p, const char *why)
{
	struct ev_loop *loop = p->sh->l->loop;

	if (p->fd < 0)
		return;
	if (p->established || !p->connecting)
		log_rl(LOG_LVL_WARN, "sync with %s (%s) closed: %s", p->name, p->addr_str, why);
	ev_io_stop(loop, &p->rio);
	ev_io_stop(loop, &p->wio);
	close(p->fd);
	p->fd = -1;
	sync_peer_set_established(p, 0);
	p->connecting = 0;
	p->bulk_tx = 0;
	p->out_len = p->out_off = 0;
	p->remote_has_our_bulk = 0;
	p->reconnects++;
	if (p->initiator) {
		/* Whatever the timer was waiting for (connect, handshake) went with the connection. */
		ev_timer_stop(loop, &p->retry);
		ev_timer_set(&p->retry, SYNC_RETRY_S, 0.);
		ev_timer_start(loop, &p->retry);
	}
}

/* Closes the pending connection, which never authenticated; counted. */
static void sync_peer_pending_close(struct sync_peer *p, const char *why)
{
	struct sync_pending *q = &p->pend;

	if (q->fd < 0)
		return;
	log_rl(LOG_LVL_WARN, "sync: unauthenticated connection from %s (%s) closed: %s", p->name, p->addr_str,
	       why);
	ev_io_stop(p->sh->l->loop, &q->rio);
	ev_timer_stop(p->sh->l->loop, &q->deadline);
	close(q->fd);
	q->fd = -1;
	q->in_len = 0;
	p->unauthenticated++;
}

static void sync_peer_pending_deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct sync_peer *p = t->data;

	p->handshake_timeouts++;
	sync_peer_pending_close(p, "no authentic message within the handshake deadline");
}

/* A HELLO on the pending connection, straight to the socket (the output buffer is the session's):
 * tells a restarted peer our challenge. -1 when the socket does not take it whole. */
static int sync_peer_pending_hello(struct sync_peer *p)
{
	Dsrlb__SyncMessage m = DSRLB__SYNC_MESSAGE__INIT;
	uint8_t hdr[4];
	size_t elen;
	struct iovec iov[2];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

	m.type = DSRLB__SYNC_TYPE__SYNC_HELLO;
	if (sync_peer_seal(p, &m, 0, &elen) < 0)
		return -1;
	sync_put_len(hdr, (uint32_t)elen);
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ p->sh->ebuf, elen };
	p->pend.hellos++;
	p->sent_msgs++;
	return sendmsg(p->pend.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)(4 + elen) ? 0 : -1;
}

/* The pending connection sent an authentic message (opened into sh->plain, plen bytes, the first
 * `used` bytes of its buffer consumed): it becomes the session, replacing the old connection. */
static void sync_peer_promote(struct sync_peer *p, size_t used, size_t plen)
{
	struct sync_pending *q = &p->pend;
	uint8_t *in = p->in;
	int fd = q->fd, hellos = q->hellos;
	size_t rest = q->in_len - used;

	ev_io_stop(p->sh->l->loop, &q->rio);
	ev_timer_stop(p->sh->l->loop, &q->deadline);
	q->fd = -1;
	if (p->fd >= 0)
		sync_peer_close(p, "replaced by an authenticated new connection");
	log_info("sync: new connection from %s (%s) authenticated", p->name, p->addr_str);
	sync_peer_setup_fd(p, fd);
	sync_peer_connected(p, 0);
	p->hellos = hellos;
	/* The rest of what arrived goes with the session: swap the buffers. */
	memmove(q->in, q->in + used, rest);
	p->in = q->in;
	p->in_len = rest;
	q->in = in;
	q->in_len = 0;
	sync_peer_dispatch(p, plen);
	if (p->fd >= 0)
		sync_peer_frames(p);
}

static void sync_peer_pending_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sync_peer *p = w->data;
	struct sync_pending *q = &p->pend;

	for (int rounds = 0; rounds < 4; rounds++) {
		const char *why;
		size_t off = 0;
		int got = sync_peer_recv(q->fd, q->in, &q->in_len, &why);

		if (got < 0)
			sync_peer_pending_close(p, why);
		if (got <= 0)
			return;
		while (q->in_len - off >= 4) {
			uint32_t len = sync_get_len(q->in + off);
			size_t plen;
			enum auth_result r;

			if (len > AUTH_MAX_ENVELOPE) {
				p->rejected++;
				p->oversized++;
				sync_peer_pending_close(p, "oversized frame");
				return;
			}
			if (q->in_len - off < 4 + (size_t)len)
				break;
			r = auth_open(p->sess, q->in + off + 4, len, p->sh->plain, AUTH_MAX_MSG, &plen);
			off += 4 + len;
			if (r == AUTH_OK) {
				sync_peer_promote(p, off, plen);
				return;
			}
			if (r == AUTH_STALE_EPOCH) {
				/* A restarted peer: tell it our challenge. */
				if (q->hellos < SYNC_HELLO_MAX && sync_peer_pending_hello(p) < 0) {
					sync_peer_pending_close(p, "does not read");
					return;
				}
				continue;
			}
			p->rejected++;
			log_rl(LOG_LVL_WARN, "sync from %s: frame rejected: %s", p->name, auth_result_str(r));
		}
		memmove(q->in, q->in + off, q->in_len - off);
		q->in_len -= off;
	}
}

void sync_peer_accept(struct sync_peer *p, int fd)
{
	struct sync_pending *q = &p->pend;
	struct ev_loop *loop = p->sh->l->loop;

	if (p->initiator) {
		/* We connect to it; a connection from it is not part of the protocol. */
		p->refused++;
		log_rl(LOG_LVL_WARN, "sync: connection from %s (%s) refused: the lower address connects", p->name,
		       p->addr_str);
		close(fd);
		return;
	}
	/* At most one pending connection: the newest, so a silent one cannot keep a restarted peer out. */
	sync_peer_pending_close(p, "replaced by a newer connection");
	q->fd = fd;
	q->in_len = 0;
	q->hellos = 0;
	ev_io_init(&q->rio, sync_peer_pending_read_cb, fd, EV_READ);
	q->rio.data = p;
	ev_io_start(loop, &q->rio);
	ev_timer_set(&q->deadline, SYNC_HANDSHAKE_S, 0.);
	ev_timer_start(loop, &q->deadline);
}

struct sync_peer *sync_peer_create(struct sync_shared *sh, const struct cfg_node *self,
				   const struct cfg_node *node, uint16_t port)
{
	struct sync_peer *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->sh = sh;
	p->fd = -1;
	p->pend.fd = -1;
	snprintf(p->name, sizeof(p->name), "%s", node->name);
	p->self_addr = self->addr;
	p->addr = node->addr;
	p->port = port;
	p->initiator = memcmp(p->self_addr.b, p->addr.b, sizeof(p->addr.b)) < 0;
	ipaddr_str(&p->addr, p->addr_str);
	p->sess = auth_session_create(sh->keys, AUTH_KIND_SYNC, self->name, node->name);
	p->in = malloc(SYNC_FRAME_MAX);
	p->pend.in = malloc(SYNC_FRAME_MAX);
	p->out = malloc(sh->out_max);
	if (!p->sess || !p->in || !p->pend.in || !p->out) {
		log_err("%s: out of memory", __func__);
		sync_peer_destroy(p);
		return NULL;
	}
	ev_init(&p->retry, sync_peer_retry_cb);
	ev_init(&p->pend.deadline, sync_peer_pending_deadline_cb);
	p->retry.data = p->pend.deadline.data = p;
	if (p->initiator) {
		ev_timer_set(&p->retry, 0., 0.);
		ev_timer_start(sh->l->loop, &p->retry);
	}
	return p;
}

void sync_peer_destroy(struct sync_peer *p)
{
	if (!p)
		return;
	sync_peer_pending_close(p, "stopping");
	sync_peer_close(p, "stopping");
	ev_timer_stop(p->sh->l->loop, &p->retry);
	auth_session_destroy(p->sess);
	free(p->in);
	free(p->pend.in);
	free(p->out);
	free(p);
}

void sync_peer_reload(struct sync_peer *p, struct auth_keyring *keys)
{
	auth_session_set_keyring(p->sess, keys);
}

const char *sync_peer_state_str(const struct sync_peer *p)
{
	if (p->fd < 0 && p->pend.fd >= 0)
		return "handshake";
	if (p->fd < 0 || p->connecting)
		return "connecting";
	return p->established ? "established" : "handshake";
}

static int sync_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* p99 of the updates acknowledged in the last SYNC_LAG_WINDOW_MS: what the lag is now, not what a bulk
 * transfer or a reconnect did to it minutes ago. */
uint32_t sync_peer_lag_p99(const struct sync_peer *p, uint64_t now, uint32_t *scratch, uint32_t *n_out)
{
	uint32_t kept = p->n_lags < SYNC_LAGS ? p->n_lags : SYNC_LAGS, n = 0;

	for (uint32_t i = 0; i < kept; i++)
		if (now - p->lag_at[i] <= SYNC_LAG_WINDOW_MS)
			scratch[n++] = p->lags[i];
	*n_out = n;
	if (!n)
		return 0;
	qsort(scratch, n, sizeof(uint32_t), sync_cmp_u32);
	return scratch[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
}

void sync_peer_status(const struct sync_peer *p, Dsrlb__SyncPeerStatus *ps, uint64_t now, uint32_t *scratch)
{
	static const char *bulk_names[] = { "none", "requested", "receiving", "done" };
	const struct sync_shared *sh = p->sh;

	ps->name = (char *)p->name;
	ps->address = (char *)p->addr_str;
	ps->state = (char *)sync_peer_state_str(p);
	ps->established = p->established;
	ps->bulk_state = (char *)bulk_names[p->bulk];
	ps->bulk_received = p->bulk_received;
	ps->bulk_total = p->bulk_total;
	ps->bulk_duration_ms = p->bulk_duration_ms;
	ps->bulk_done_ms_ago = p->bulk == BULK_DONE ? (int64_t)(now - p->bulk_done_ms) : -1;
	ps->bulk_tx_state = (char *)(p->bulk_tx ? "sending" : !p->bulk_tx_sent || !p->established ? "none"
				     : p->remote_has_our_bulk ? "done" : "sent");
	ps->bulk_sent = p->bulk_sent;
	ps->last_lag_ms = p->last_lag;
	ps->lag_p99_ms = sync_peer_lag_p99(p, now, scratch, &ps->lag_samples);
	ps->out_bytes = p->out_len - p->out_off;
	ps->dropped = p->dropped;
	ps->sent_flows = p->sent_flows;
	ps->received_flows = p->recv_flows;
	ps->sent_messages = p->sent_msgs;
	ps->received_messages = p->recv_msgs;
	ps->rejected = p->rejected;
	ps->unknown_backend = p->unknown_backend;
	ps->bad_flows = p->bad_flows;
	ps->no_ipv6_table = p->no_ipv6;
	ps->reconnects = p->reconnects;
	ps->unauthenticated = p->unauthenticated;
	ps->handshake_timeouts = p->handshake_timeouts;
	ps->oversized = p->oversized;
	ps->refused = p->refused;
	ps->peer_active = p->peer_active;
	ps->state_age_ms = p->remote_at_ms ? (int64_t)(now - p->remote_at_ms) : -1;
	ps->forwarding = p->remote.forwarding;
	ps->announced = p->remote.announced;
	ps->announce_why = (char *)p->remote.why;
	ps->flows = p->remote.flows;
	ps->config_digest_match = p->remote_at_ms && !memcmp(p->remote.digest, sh->l->cfg->digest,
							      sizeof(p->remote.digest));
	ps->has_our_bulk = p->established && p->remote_has_our_bulk;
}
