/* The exporter's HTTP server (http.h). Each connection goes READ -> WAIT (for the metrics text) ->
 * WRITE -> LINGER -> closed, with one timer for the deadline of its phase. Nothing a client sends can do
 * more than earn a 4xx and a close: the request head lives in a fixed buffer, and a client that does not
 * finish in time is closed. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "http.h"
#include "log.h"
#include "prom.h"

enum http_phase { HTTP_READ, HTTP_WAIT, HTTP_WRITE, HTTP_LINGER };

struct http_conn {
	struct http_server *srv;
	int fd;
	enum http_phase phase;
	ev_io io;
	ev_timer timer;
	uint64_t since_ns;       /* connect: who is evicted first */
	char in[HTTP_MAX_REQUEST];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
};

struct http_server {
	struct ev_loop *loop;
	int fd;
	ev_io accept_io;
	http_want_fn want;
	void *arg;
	struct http_conn *conns[HTTP_MAX_CLIENTS];
};

/* ---- request parsing ------------------------------------------------------------------------ */

static int http_is_token(char c)
{
	return c >= 'A' && c <= 'Z';
}

int http_parse_request(const char *buf, size_t len)
{
	const char *end = NULL, *eol, *p, *target, *version;
	size_t tlen;

	/* The head ends at the first empty line (CRLF CRLF, or bare LF LF from a hand-typed request). */
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] == '\n' && (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n'))) {
			end = buf + i;
			break;
		}
	}
	if (!end)
		return len >= HTTP_MAX_REQUEST ? 431 : 0;
	eol = memchr(buf, '\n', len);
	if (eol > buf && eol[-1] == '\r')
		eol--;
	/* METHOD SP TARGET SP HTTP/1.x */
	for (p = buf; p < eol && http_is_token(*p); p++)
		;
	if (p == buf || p >= eol || *p != ' ')
		return 400;
	target = p + 1;
	for (p = target; p < eol && *p > ' ' && *p < 0x7f; p++)
		;
	tlen = (size_t)(p - target);
	if (tlen == 0 || p >= eol || *p != ' ')
		return 400;
	version = p + 1;
	if ((size_t)(eol - version) != 8 || memcmp(version, "HTTP/1.", 7) != 0)
		return eol - version >= 5 && !memcmp(version, "HTTP/", 5) && !memchr(version, ' ', (size_t)(eol - version))
		       ? 505 : 400;
	if (version[7] != '0' && version[7] != '1')
		return 505;
	if (target - buf - 1 != 3 || memcmp(buf, "GET", 3) != 0)
		return 405;
	if ((tlen == 8 || (tlen > 8 && target[8] == '?')) && !memcmp(target, "/metrics", 8))
		return 200;
	return 404;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void http_conn_close(struct http_conn *c)
{
	struct http_server *s = c->srv;

	for (size_t i = 0; i < HTTP_MAX_CLIENTS; i++)
		if (s->conns[i] == c)
			s->conns[i] = NULL;
	ev_io_stop(s->loop, &c->io);
	ev_timer_stop(s->loop, &c->timer);
	close(c->fd);
	free(c->out);
	free(c);
}

static void http_conn_phase(struct http_conn *c, enum http_phase phase, int events, uint32_t deadline_ms)
{
	struct ev_loop *loop = c->srv->loop;

	c->phase = phase;
	ev_io_stop(loop, &c->io);
	if (events) {
		ev_io_set(&c->io, c->fd, events);
		ev_io_start(loop, &c->io);
	}
	if (deadline_ms) {
		ev_timer_stop(loop, &c->timer);
		ev_timer_set(&c->timer, deadline_ms / 1000.0, 0.);
		ev_timer_start(loop, &c->timer);
	}
}

static const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default:  return "HTTP Version Not Supported";
	}
}

/* Queues the whole answer and starts sending it. */
static void http_conn_respond(struct http_conn *c, int status, const char *body, size_t len)
{
	char head[256];
	int n;

	n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n%s\r\n", status, http_reason(status),
		     status == 200 ? PROM_CONTENT_TYPE : "text/plain; charset=utf-8", len,
		     status == 405 ? "Allow: GET\r\n" : "");
	if (!(c->out = malloc((size_t)n + len))) {
		http_conn_close(c);
		return;
	}
	memcpy(c->out, head, (size_t)n);
	memcpy(c->out + n, body, len);
	c->out_len = (size_t)n + len;
	c->out_off = 0;
	/* WRITE keeps the deadline set when the request was complete. */
	http_conn_phase(c, HTTP_WRITE, EV_WRITE, 0);
}

static void http_conn_error(struct http_conn *c, int status)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, http_reason(status));

	log_rl(LOG_LVL_INFO, "http: answered %d to a client", status);
	http_conn_respond(c, status, body, (size_t)n);
}

static void http_conn_read(struct http_conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			http_conn_close(c);
			return;
		}
		if (n < 0)
			return;
		c->in_len += (size_t)n;
		int status = http_parse_request(c->in, c->in_len);
		if (status == 0)
			continue;
		/* From here on the request is done: the answer has HTTP_WRITE_MS to arrive and be taken. */
		http_conn_phase(c, HTTP_WAIT, 0, HTTP_WRITE_MS);
		if (status != 200) {
			http_conn_error(c, status);
			return;
		}
		c->srv->want(c->srv->arg);
		return;
	}
}

static void http_conn_write(struct http_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				http_conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	/* All sent: tell the client, then read (and drop) what it still sends until it closes, so the
	 * kernel does not answer unread data with a reset that could destroy the answer in flight. */
	shutdown(c->fd, SHUT_WR);
	http_conn_phase(c, HTTP_LINGER, EV_READ, HTTP_LINGER_MS);
}

static void http_conn_linger(struct http_conn *c)
{
	char sink[4096];

	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			break;
	}
	http_conn_close(c);
}

static void http_conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_conn *c = w->data;

	switch (c->phase) {
	case HTTP_READ: http_conn_read(c); break;
	case HTTP_WRITE: http_conn_write(c); break;
	case HTTP_LINGER: http_conn_linger(c); break;
	case HTTP_WAIT: break;
	}
}

static void http_conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_conn *c = w->data;

	if (c->phase == HTTP_READ)
		log_rl(LOG_LVL_INFO, "http: a client did not send its request within %d ms, closed", HTTP_READ_MS);
	else if (c->phase != HTTP_LINGER)
		log_rl(LOG_LVL_INFO, "http: a client did not take its answer within %d ms, closed", HTTP_WRITE_MS);
	http_conn_close(c);
}

/* ---- the server ----------------------------------------------------------------------------- */

void http_server_answer(struct http_server *s, const char *body, size_t len)
{
	for (size_t i = 0; i < HTTP_MAX_CLIENTS; i++) {
		struct http_conn *c = s->conns[i];
		if (!c || c->phase != HTTP_WAIT)
			continue;
		if (body)
			http_conn_respond(c, 200, body, len);
		else
			http_conn_error(c, 503);
	}
}

/* A free slot, made by closing the client that has been sending its request longest when all are
 * taken; -1 when every client is past its request (they finish within their deadlines). */
static int http_server_slot(struct http_server *s)
{
	struct http_conn *victim = NULL;
	size_t i;

	for (i = 0; i < HTTP_MAX_CLIENTS; i++) {
		struct http_conn *c = s->conns[i];
		if (!c)
			return (int)i;
		if (c->phase == HTTP_READ && (!victim || c->since_ns < victim->since_ns))
			victim = c;
	}
	if (!victim)
		return -1;
	log_rl(LOG_LVL_INFO, "http: all %d slots taken, closing the client whose request is oldest", HTTP_MAX_CLIENTS);
	http_conn_close(victim);
	return http_server_slot(s);
}

static void http_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_server *s = w->data;

	for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct http_conn *c;
		int slot;
		if (fd < 0)
			return;
		if ((slot = http_server_slot(s)) < 0 || !(c = calloc(1, sizeof(*c)))) {
			close(fd);
			continue;
		}
		c->srv = s;
		c->fd = fd;
		c->since_ns = clock_ns();
		ev_init(&c->io, http_conn_io_cb);
		ev_init(&c->timer, http_conn_timer_cb);
		c->io.data = c->timer.data = c;
		s->conns[slot] = c;
		http_conn_phase(c, HTTP_READ, EV_READ, HTTP_READ_MS);
	}
}

struct http_server *http_server_create(struct ev_loop *loop, const struct sockaddr *addr, socklen_t addr_len,
				       http_want_fn want, void *arg)
{
	struct http_server *s = calloc(1, sizeof(*s));
	int one = 1;

	if (!s)
		return NULL;
	s->loop = loop;
	s->want = want;
	s->arg = arg;
	s->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		log_err("%s: socket: %s", __func__, strerror(errno));
		free(s);
		return NULL;
	}
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->fd, addr, addr_len) < 0 || listen(s->fd, 16) < 0) {
		log_err("%s: bind: %s", __func__, strerror(errno));
		close(s->fd);
		free(s);
		return NULL;
	}
	ev_io_init(&s->accept_io, http_accept_cb, s->fd, EV_READ);
	s->accept_io.data = s;
	ev_io_start(loop, &s->accept_io);
	return s;
}

void http_server_destroy(struct http_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < HTTP_MAX_CLIENTS; i++)
		if (s->conns[i])
			http_conn_close(s->conns[i]);
	ev_io_stop(s->loop, &s->accept_io);
	close(s->fd);
	free(s);
}
