/* Control sockets: length-prefixed protobuf over Unix stream sockets, server and clients.
 * The server is non-blocking on a libev loop; each client has its own input buffer, bounded by
 * IPC_MAX_MSG, and is closed on a malformed frame, a refused request or a stalled peer. */
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

struct ipc_conn {
	struct ipc_server *srv;
	int fd;
	ev_io rio, wio;
	ev_timer idle;
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
	ipc_handler handler;
	void *arg;
	struct ipc_conn *conns[IPC_MAX_CLIENTS];
	uint64_t bad_requests;
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

static void ipc_conn_close(struct ipc_conn *c)
{
	struct ipc_server *s = c->srv;

	ev_io_stop(s->loop, &c->rio);
	ev_io_stop(s->loop, &c->wio);
	ev_timer_stop(s->loop, &c->idle);
	close(c->fd);
	for (size_t i = 0; i < IPC_MAX_CLIENTS; i++)
		if (s->conns[i] == c)
			s->conns[i] = NULL;
	free(c->in);
	free(c->out);
	free(c);
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
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	ev_io_stop(loop, &c->wio);
	ev_io_start(loop, &c->rio);
	/* A pipelined request may already be buffered. */
	if (c->in_len >= 4) {
		uint32_t want = ipc_get_len(c->in);
		if (want <= IPC_MAX_MSG && c->in_len >= 4 + (size_t)want && ipc_conn_dispatch(c, want) < 0)
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

	if (s->handler(s->arg, c->in + 4, body_len, &resp, &resp_len) < 0 || resp_len > IPC_MAX_MSG) {
		free(resp);
		s->bad_requests++;
		log_rl(LOG_LVL_WARN, "control socket %s: bad request, client dropped", s->path);
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
	/* One request at a time per client: stop reading until the response is out. */
	memmove(c->in, c->in + 4 + body_len, c->in_len - 4 - body_len);
	c->in_len -= 4 + body_len;
	ev_io_stop(s->loop, &c->rio);
	ev_io_start(s->loop, &c->wio);
	return 0;
}

static void ipc_conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_conn *c = w->data;

	for (;;) {
		if (c->in_len == c->in_cap) {
			size_t cap = c->in_cap ? c->in_cap * 2 : 4096;
			uint8_t *p;
			if (cap > IPC_MAX_MSG + 4)
				cap = IPC_MAX_MSG + 4;
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
		if (c->in_len >= 4) {
			uint32_t want = ipc_get_len(c->in);
			if (want > IPC_MAX_MSG) {
				c->srv->bad_requests++;
				log_rl(LOG_LVL_WARN, "control socket %s: oversized frame (%u bytes), client dropped",
				       c->srv->path, want);
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
	ev_timer_again(loop, &c->idle);
}

static void ipc_conn_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipc_conn *c = w->data;

	if (c->in_len == 0 && c->out_len == 0) {
		ev_timer_again(loop, w);
		return;
	}
	log_rl(LOG_LVL_WARN, "control socket %s: client stalled mid-message, dropped", c->srv->path);
	ipc_conn_close(c);
}

static void ipc_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_server *s = w->data;
	struct ipc_conn *c;
	size_t slot;
	int fd;

	fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	for (slot = 0; slot < IPC_MAX_CLIENTS && s->conns[slot]; slot++)
		;
	if (slot == IPC_MAX_CLIENTS || !(c = calloc(1, sizeof(*c)))) {
		log_rl(LOG_LVL_WARN, "control socket %s: too many clients", s->path);
		close(fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	ev_io_init(&c->rio, ipc_conn_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, ipc_conn_write_cb, fd, EV_WRITE);
	ev_init(&c->idle, ipc_conn_idle_cb);
	c->idle.repeat = IPC_IDLE_MS / 1000.0;
	c->rio.data = c->wio.data = c->idle.data = c;
	ev_io_start(loop, &c->rio);
	ev_timer_again(loop, &c->idle);
	s->conns[slot] = c;
}

struct ipc_server *ipc_server_create(struct ev_loop *loop, const char *path, ipc_handler h, void *arg)
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
	s->handler = h;
	s->arg = arg;
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
	old = umask(0117);
	if (bind(s->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(s->fd, 16) < 0) {
		int e = errno;
		umask(old);
		log_err("%s: bind %s: %s", __func__, path, strerror(e));
		close(s->fd);
		free(s);
		errno = e;
		return NULL;
	}
	umask(old);
	chmod(path, 0660);
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

uint64_t ipc_server_bad_requests(const struct ipc_server *s)
{
	return s->bad_requests;
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
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 && errno != EINPROGRESS) {
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
