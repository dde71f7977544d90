/* Control sockets: length-prefixed protobuf over Unix stream sockets, server and clients.
 * The server is non-blocking on a libev loop. It learns each client's credentials when it connects and
 * hands them to the handler with every request; it bounds what a client may cost: a request of at most
 * IPC_MAX_REQ, IPC_PARTIAL_MS to finish a message either way, IPC_IDLE_MS of silence between requests,
 * IPC_MAX_CLIENTS slots (a newcomer evicts the client silent longest) and IPC_OUT_BUDGET of queued
 * responses. docs/security.md states these bounds for operators. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "ipc.h"
#include "log.h"

/* What a connection is doing, which sets its deadline. */
enum ipc_phase { IPC_PHASE_IDLE, IPC_PHASE_RECV, IPC_PHASE_SEND };

struct ipc_conn {
	struct ipc_server *srv;
	int fd;
	ev_io rio, wio;
	ev_timer timer;
	struct ipc_peer peer;
	enum ipc_phase phase;
	uint64_t deadline_ms;   /* of the current phase */
	uint64_t heard_ns;      /* last byte received, or the connect: who is evicted first */
	int close_after;        /* no rights at all: closed once its refusal is out */
	uint8_t *in;            /* header + body being received */
	size_t in_len, in_cap;
	uint8_t *out;           /* response being sent */
	size_t out_len, out_off;
};

struct ipc_server {
	struct ev_loop *loop;
	int fd;
	ev_io accept_io;
	char path[108];
	ipc_access_fn access;
	ipc_handler handler;
	void *arg;
	uint32_t partial_ms, idle_ms;
	size_t out_queued;      /* bytes of responses not yet sent, all clients */
	struct ipc_conn *conns[IPC_MAX_CLIENTS];
	struct ipc_server_stats st;
};

static int ipc_sockaddr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun->sun_path, path);
	return 0;
}

static uint32_t ipc_get_len(const uint8_t *p);
static int ipc_conn_dispatch(struct ipc_conn *c, size_t body_len);

static void ipc_conn_free_out(struct ipc_conn *c)
{
	c->srv->out_queued -= c->out_len;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
}

static void ipc_conn_close(struct ipc_conn *c)
{
	struct ipc_server *s = c->srv;

	ev_io_stop(s->loop, &c->rio);
	ev_io_stop(s->loop, &c->wio);
	ev_timer_stop(s->loop, &c->timer);
	close(c->fd);
	for (size_t i = 0; i < IPC_MAX_CLIENTS; i++)
		if (s->conns[i] == c)
			s->conns[i] = NULL;
	ipc_conn_free_out(c);
	free(c->in);
	free(c);
}

/* Starts the deadline of a new phase; a phase that goes on keeps its deadline, so a client that
 * trickles a request a byte at a time still has IPC_PARTIAL_MS for all of it. */
static void ipc_conn_phase(struct ipc_conn *c)
{
	struct ipc_server *s = c->srv;
	enum ipc_phase ph = c->out ? IPC_PHASE_SEND : c->in_len ? IPC_PHASE_RECV : IPC_PHASE_IDLE;
	uint32_t ms = ph == IPC_PHASE_IDLE ? s->idle_ms : s->partial_ms;

	if (ph == c->phase && ev_is_active(&c->timer))
		return;
	c->phase = ph;
	c->deadline_ms = clock_ms() + ms;
	ev_timer_stop(s->loop, &c->timer);
	ev_timer_set(&c->timer, ms / 1000.0, 0.);
	ev_timer_start(s->loop, &c->timer);
}

static void ipc_conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipc_conn *c = w->data;
	uint64_t now = clock_ms();

	/* libev's clock may run a little ahead of ours: wait out the rest. */
	if (now < c->deadline_ms) {
		ev_timer_set(w, (c->deadline_ms - now) / 1000.0, 0.);
		ev_timer_start(loop, w);
		return;
	}
	c->srv->st.idle_closed++;
	log_rl(LOG_LVL_WARN, "control socket %s: client pid %d uid %u %s, dropped", c->srv->path, (int)c->peer.pid,
	       (unsigned)c->peer.uid,
	       c->phase == IPC_PHASE_IDLE ? "silent too long" :
	       c->phase == IPC_PHASE_RECV ? "stalled mid-request" : "not reading its response");
	ipc_conn_close(c);
}

static void ipc_conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_conn *c = w->data;

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			ipc_conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	ipc_conn_free_out(c);
	if (c->close_after) {
		ipc_conn_close(c);
		return;
	}
	ev_io_stop(loop, &c->wio);
	ev_io_start(loop, &c->rio);
	ipc_conn_phase(c);
	/* A pipelined request may already be buffered. */
	if (c->in_len >= 4) {
		uint32_t want = ipc_get_len(c->in);
		if (want <= IPC_MAX_REQ && c->in_len >= 4 + (size_t)want && ipc_conn_dispatch(c, want) < 0)
			ipc_conn_close(c);
	}
}

static uint32_t ipc_get_len(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void ipc_put_len(uint8_t *p, uint32_t n)
{
	p[0] = n >> 24;
	p[1] = n >> 16;
	p[2] = n >> 8;
	p[3] = n;
}

/* Runs the handler on a complete request and queues its response. Returns -1 to drop the client. */
static int ipc_conn_dispatch(struct ipc_conn *c, size_t body_len)
{
	struct ipc_server *s = c->srv;
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	int rc = s->handler(s->arg, &c->peer, c->in + 4, body_len, &resp, &resp_len);

	if (rc < 0 || resp_len > IPC_MAX_MSG) {
		free(resp);
		s->st.bad_requests++;
		log_rl(LOG_LVL_WARN, "control socket %s: bad request from pid %d uid %u, client dropped", s->path,
		       (int)c->peer.pid, (unsigned)c->peer.uid);
		return -1;
	}
	if (rc == IPC_REFUSED) {
		s->st.refused++;
		log_rl(LOG_LVL_WARN, "control socket %s: request of pid %d uid %u refused: not allowed", s->path,
		       (int)c->peer.pid, (unsigned)c->peer.uid);
		if (c->peer.access == IPC_ACCESS_NONE)
			c->close_after = 1;
	}
	/* Small answers always go out; big ones (flow listings) only while the total stays in budget. */
	if (resp_len > IPC_SMALL_RESP && s->out_queued + resp_len > IPC_OUT_BUDGET) {
		free(resp);
		s->st.oversized++;
		log_rl(LOG_LVL_WARN, "control socket %s: a %zu-byte response would pass the %u-byte budget of "
		       "queued responses, client dropped", s->path, resp_len, IPC_OUT_BUDGET);
		return -1;
	}
	c->out = malloc(resp_len + 4);
	if (!c->out) {
		free(resp);
		return -1;
	}
	ipc_put_len(c->out, (uint32_t)resp_len);
	if (resp_len)
		memcpy(c->out + 4, resp, resp_len);
	free(resp);
	c->out_len = resp_len + 4;
	c->out_off = 0;
	s->out_queued += c->out_len;
	/* One request at a time per client: stop reading until the response is out. */
	memmove(c->in, c->in + 4 + body_len, c->in_len - 4 - body_len);
	c->in_len -= 4 + body_len;
	ev_io_stop(s->loop, &c->rio);
	ev_io_start(s->loop, &c->wio);
	ipc_conn_phase(c);
	return 0;
}

static void ipc_conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_conn *c = w->data;

	for (;;) {
		if (c->in_len == c->in_cap) {
			size_t cap = c->in_cap ? c->in_cap * 2 : 4096;
			uint8_t *p;
			if (cap > IPC_MAX_REQ + 4)
				cap = IPC_MAX_REQ + 4;
			if (cap == c->in_cap || !(p = realloc(c->in, cap))) {
				ipc_conn_close(c);
				return;
			}
			c->in = p;
			c->in_cap = cap;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (n == 0) {
			ipc_conn_close(c);
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			ipc_conn_close(c);
			return;
		}
		c->in_len += (size_t)n;
		c->heard_ns = clock_ns();
		if (c->in_len >= 4) {
			uint32_t want = ipc_get_len(c->in);
			if (want > IPC_MAX_REQ) {
				c->srv->st.oversized++;
				log_rl(LOG_LVL_WARN, "control socket %s: request of %u bytes from pid %d uid %u (at most "
				       "%u), client dropped", c->srv->path, want, (int)c->peer.pid,
				       (unsigned)c->peer.uid, IPC_MAX_REQ);
				ipc_conn_close(c);
				return;
			}
			if (c->in_len >= 4 + (size_t)want) {
				if (ipc_conn_dispatch(c, want) < 0)
					ipc_conn_close(c);
				return;
			}
		}
	}
	ipc_conn_phase(c);
}

/* The client to close for a newcomer when every slot is taken: among those with the fewest rights,
 * the one silent longest. A client that talks (vrrpd's link asks every advert interval) is not it. */
static struct ipc_conn *ipc_server_victim(struct ipc_server *s)
{
	struct ipc_conn *v = NULL;

	for (size_t i = 0; i < IPC_MAX_CLIENTS; i++) {
		struct ipc_conn *c = s->conns[i];
		if (c && (!v || c->peer.access < v->peer.access ||
			  (c->peer.access == v->peer.access && c->heard_ns < v->heard_ns)))
			v = c;
	}
	return v;
}

/* Who is at the other end: SO_PEERCRED for uid, gid and pid, SO_PEERGROUPS for the supplementary
 * groups; the access function turns them into rights. Credentials that cannot be read give none. */
static void ipc_conn_peer(struct ipc_server *s, struct ipc_conn *c)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	gid_t small[64], *groups = small;
	struct ipc_cred cred;

	c->peer.uid = (uid_t)-1;
	c->peer.gid = (gid_t)-1;
	c->peer.access = IPC_ACCESS_NONE;
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
		log_rl(LOG_LVL_WARN, "%s: SO_PEERCRED: %s", __func__, strerror(errno));
		return;
	}
	c->peer.uid = uc.uid;
	c->peer.gid = uc.gid;
	c->peer.pid = uc.pid;
	len = sizeof(small);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, small, &len) < 0) {
		/* More groups than fit: the kernel said how many bytes it needs (NGROUPS_MAX bounds it). */
		if (errno != ERANGE || !(groups = malloc(len)) ||
		    getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
			log_rl(LOG_LVL_WARN, "%s: SO_PEERGROUPS: %s", __func__, strerror(errno));
			if (groups != small)
				free(groups);
			groups = small;
			len = 0;
		}
	}
	cred = (struct ipc_cred){ uc.uid, uc.gid, uc.pid, groups, len / sizeof(gid_t) };
	c->peer.access = s->access ? s->access(s->arg, &cred) : IPC_ACCESS_CHANGE;
	if (groups != small)
		free(groups);
}

/* Takes an accepted (or, in the fuzz target, socketpair) connection into a slot. */
static struct ipc_conn *ipc_conn_add(struct ipc_server *s, int fd)
{
	struct ipc_conn *c;
	size_t slot;

	for (slot = 0; slot < IPC_MAX_CLIENTS && s->conns[slot]; slot++)
		;
	if (slot == IPC_MAX_CLIENTS) {
		struct ipc_conn *v = ipc_server_victim(s);
		s->st.evicted++;
		log_rl(LOG_LVL_WARN, "control socket %s: all %d slots taken, closing pid %d uid %u (silent %llu ms) "
		       "for a new client", s->path, IPC_MAX_CLIENTS, (int)v->peer.pid, (unsigned)v->peer.uid,
		       (unsigned long long)((clock_ns() - v->heard_ns) / 1000000));
		ipc_conn_close(v);
		for (slot = 0; s->conns[slot]; slot++)
			;
	}
	if (!(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return NULL;
	}
	c->srv = s;
	c->fd = fd;
	c->heard_ns = clock_ns();
	ipc_conn_peer(s, c);
	ev_io_init(&c->rio, ipc_conn_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, ipc_conn_write_cb, fd, EV_WRITE);
	ev_init(&c->timer, ipc_conn_timer_cb);
	c->rio.data = c->wio.data = c->timer.data = c;
	ev_io_start(s->loop, &c->rio);
	ipc_conn_phase(c);
	s->conns[slot] = c;
	return c;
}

/* Empties the backlog a batch at a time, so a flood of connections leaves room in it for the next
 * legitimate one. */
static void ipc_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_server *s = w->data;

	for (int i = 0; i < IPC_ACCEPT_BATCH; i++) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		ipc_conn_add(s, fd);
	}
}

struct ipc_server *ipc_server_create(struct ev_loop *loop, const char *path, ipc_access_fn access,
				     ipc_handler h, void *arg)
{
	struct sockaddr_un sun;
	struct ipc_server *s;
	mode_t old;

	if (ipc_sockaddr(path, &sun) < 0) {
		log_err("%s: %s: %s", __func__, path, strerror(errno));
		return NULL;
	}
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	s->loop = loop;
	s->access = access;
	s->handler = h;
	s->arg = arg;
	s->partial_ms = IPC_PARTIAL_MS;
	s->idle_ms = IPC_IDLE_MS;
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		log_err("%s: socket: %s", __func__, strerror(errno));
		free(s);
		return NULL;
	}
	/* A stale socket of a dead daemon is replaced; a live one (or anything that is not a socket) is not. */
	struct stat sb;
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode) ||
		    (connect(s->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ? errno != ECONNREFUSED : 1)) {
			log_err("%s: %s is in use (a running daemon, or not a socket)", __func__, path);
			close(s->fd);
			free(s);
			errno = EADDRINUSE;
			return NULL;
		}
		unlink(path);
	}
	/* Anyone may connect: rights come from the peer's credentials, so a refusal is answered and
	 * counted by the daemon rather than silently made by the file's mode. */
	old = umask(0111);
	if (bind(s->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(s->fd, IPC_BACKLOG) < 0) {
		int e = errno;
		umask(old);
		log_err("%s: bind %s: %s", __func__, path, strerror(e));
		close(s->fd);
		free(s);
		errno = e;
		return NULL;
	}
	umask(old);
	chmod(path, 0666);
	ev_io_init(&s->accept_io, ipc_accept_cb, s->fd, EV_READ);
	s->accept_io.data = s;
	ev_io_start(loop, &s->accept_io);
	return s;
}

void ipc_server_destroy(struct ipc_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < IPC_MAX_CLIENTS; i++)
		if (s->conns[i])
			ipc_conn_close(s->conns[i]);
	ev_io_stop(s->loop, &s->accept_io);
	close(s->fd);
	unlink(s->path);
	free(s);
}

void ipc_server_stats(const struct ipc_server *s, struct ipc_server_stats *out)
{
	if (s)
		*out = s->st;
	else
		memset(out, 0, sizeof(*out));
}

void ipc_server_set_deadlines(struct ipc_server *s, uint32_t partial_ms, uint32_t idle_ms)
{
	s->partial_ms = partial_ms;
	s->idle_ms = idle_ms;
}

/* Waits for fd to become ready for `events` until the absolute deadline. */
static int ipc_wait(int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = clock_ms();
		struct pollfd p = { .fd = fd, .events = events };
		if (now >= deadline_ms) {
			errno = ETIMEDOUT;
			return -1;
		}
		int r = poll(&p, 1, (int)(deadline_ms - now));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

int ipc_call(const char *path, const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len,
	     int timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;
	struct sockaddr_un sun;
	uint8_t hdr[4], *buf = NULL;
	size_t off = 0, want = 0, have = 0;
	int fd;

	*resp = NULL;
	*resp_len = 0;
	if (ipc_sockaddr(path, &sun) < 0) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* A full backlog (EAGAIN: a flood of connections) clears as the server accepts: try again. */
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 && errno != EINPROGRESS) {
		if (errno == EAGAIN && clock_ms() + 10 < deadline) {
			usleep(5000);
			continue;
		}
		snprintf(err, errlen, "cannot connect to %s: %s (is the daemon running?)", path, strerror(errno));
		close(fd);
		return -1;
	}
	ipc_put_len(hdr, (uint32_t)len);
	while (off < 4 + len) {
		const uint8_t *p = off < 4 ? hdr + off : req + (off - 4);
		size_t n = off < 4 ? 4 - off : len - (off - 4);
		if (ipc_wait(fd, POLLOUT, deadline) < 0)
			goto fail;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			goto fail;
		if (w > 0)
			off += (size_t)w;
	}
	off = 0;
	for (;;) {
		if (ipc_wait(fd, POLLIN, deadline) < 0)
			goto fail;
		if (off < 4) {
			ssize_t r = recv(fd, hdr + off, 4 - off, 0);
			if (r == 0) {
				errno = ECONNRESET;
				goto fail;
			}
			if (r < 0 && errno != EAGAIN && errno != EINTR)
				goto fail;
			if (r > 0)
				off += (size_t)r;
			if (off == 4) {
				want = ipc_get_len(hdr);
				if (want > IPC_MAX_MSG) {
					errno = EMSGSIZE;
					goto fail;
				}
				if (!(buf = malloc(want ? want : 1)))
					goto fail;
				if (want == 0)
					break;
			}
			continue;
		}
		ssize_t r = recv(fd, buf + have, want - have, 0);
		if (r == 0) {
			errno = ECONNRESET;
			goto fail;
		}
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			goto fail;
		if (r > 0)
			have += (size_t)r;
		if (have == want)
			break;
	}
	close(fd);
	*resp = buf;
	*resp_len = want;
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, errno == ETIMEDOUT ? "no answer within the timeout" : strerror(errno));
	free(buf);
	close(fd);
	return -1;
}

struct ipc_client {
	struct ev_loop *loop;
	char path[108];
	ipc_reply_cb cb;
	void *arg;
	int fd;
	ev_io io;
	ev_timer timer;
	int busy;
	uint8_t *out;
	size_t out_len, out_off;
	uint8_t *in;
	size_t in_len, in_cap;
};

static void ipc_client_reset(struct ipc_client *c)
{
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
	c->in_len = 0;
}

static void ipc_client_finish(struct ipc_client *c, const uint8_t *resp, size_t len)
{
	c->busy = 0;
	ev_timer_stop(c->loop, &c->timer);
	if (!resp)
		ipc_client_reset(c);
	c->cb(c->arg, resp, len);
}

static void ipc_client_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_client *c = w->data;

	/* Readable with no request in flight: the server went away between requests. That answers no
	 * request, so no callback; the next send reconnects. */
	if (!c->busy) {
		ipc_client_reset(c);
		return;
	}
	if (revents & EV_WRITE) {
		while (c->out_off < c->out_len) {
			ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				ipc_client_finish(c, NULL, 0);
				return;
			}
			c->out_off += (size_t)n;
		}
		free(c->out);
		c->out = NULL;
		ev_io_stop(loop, &c->io);
		ev_io_set(&c->io, c->fd, EV_READ);
		ev_io_start(loop, &c->io);
		return;
	}
	for (;;) {
		if (c->in_len == c->in_cap) {
			size_t cap = c->in_cap ? c->in_cap * 2 : 4096;
			uint8_t *p = cap <= IPC_MAX_MSG + 4 ? realloc(c->in, cap) : NULL;
			if (!p) {
				ipc_client_finish(c, NULL, 0);
				return;
			}
			c->in = p;
			c->in_cap = cap;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			ipc_client_finish(c, NULL, 0);
			return;
		}
		if (n < 0)
			return;
		c->in_len += (size_t)n;
		if (c->in_len >= 4) {
			uint32_t want = ipc_get_len(c->in);
			if (want > IPC_MAX_MSG) {
				ipc_client_finish(c, NULL, 0);
				return;
			}
			if (c->in_len >= 4 + (size_t)want) {
				c->in_len = 0;
				ipc_client_finish(c, c->in + 4, want);
				return;
			}
		}
	}
}

static void ipc_client_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	ipc_client_finish(w->data, NULL, 0);
}

struct ipc_client *ipc_client_create(struct ev_loop *loop, const char *path, ipc_reply_cb cb, void *arg)
{
	struct ipc_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->loop = loop;
	c->cb = cb;
	c->arg = arg;
	c->fd = -1;
	snprintf(c->path, sizeof(c->path), "%s", path);
	ev_init(&c->io, ipc_client_io_cb);
	ev_init(&c->timer, ipc_client_timeout_cb);
	c->io.data = c->timer.data = c;
	return c;
}

void ipc_client_destroy(struct ipc_client *c)
{
	if (!c)
		return;
	ipc_client_reset(c);
	free(c->in);
	free(c);
}

int ipc_client_busy(const struct ipc_client *c)
{
	return c->busy;
}

int ipc_client_send(struct ipc_client *c, const uint8_t *req, size_t len, int timeout_ms)
{
	struct sockaddr_un sun;

	if (c->busy)
		return -1;
	if (c->fd < 0) {
		if (ipc_sockaddr(c->path, &sun) < 0)
			return -1;
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0)
			return -1;
		if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 && errno != EINPROGRESS) {
			close(c->fd);
			c->fd = -1;
			/* Report the failure through the callback, like any other. */
			c->busy = 1;
			ev_timer_set(&c->timer, 0., 0.);
			ev_timer_start(c->loop, &c->timer);
			return 0;
		}
	}
	free(c->out);
	if (!(c->out = malloc(len + 4)))
		return -1;
	ipc_put_len(c->out, (uint32_t)len);
	memcpy(c->out + 4, req, len);
	c->out_len = len + 4;
	c->out_off = 0;
	c->in_len = 0;
	c->busy = 1;
	ev_io_stop(c->loop, &c->io);
	ev_io_set(&c->io, c->fd, EV_WRITE);
	ev_io_start(c->loop, &c->io);
	ev_timer_set(&c->timer, timeout_ms / 1000.0, 0.);
	ev_timer_start(c->loop, &c->timer);
	return 0;
}
