/* Backend health checks of lbd. Every checked backend slot has a repeating timer; each round takes a
 * probe from a fixed pool, connects without blocking to the backend's real address and the service
 * port over the backend's own family (an AF_INET6 socket for an IPv6 backend), and for `check = http`
 * sends a GET and reads the status line. The result feeds a rise/fall counter; when the verdict flips,
 * the slot's `healthy` flag changes and the service's table is rebuilt.
 *
 * Where the check goes: DSR backends accept the VIP on a loopback or dummy interface and often bind
 * their service to the VIP or to 0.0.0.0. The check connects to the backend's own address, not the VIP
 * (the balancer's kernel does not own the VIP), so the service port must also be reachable on the
 * backend's real address: bind to 0.0.0.0 (IPv6: [::]), or to both the VIP and the real address.
 *
 * Probe state machine, one per check in flight:
 *
 *   IDLE --round--> CONNECTING --writable, SO_ERROR 0--> (tcp) pass
 *                        |                          \--> (http) SENDING --all sent--> READING
 *                        \--error--> fail                    |                        |
 *                                                            \--error--> fail         +--"HTTP/1.x NNN"--> pass if
 *   any state --check_timeout--> fail ("timeout ...")                                 |    NNN == check_status
 *                                                                                     \--EOF, garbage--> fail
 *
 * Nothing is allocated per check: the slots, the probe pool and the wait queue are part of struct
 * health_ctx. When all probes are busy, a round waits in a FIFO queue for the next free one rather than
 * being dropped: dropping would hit the same backends every time (their timers keep their phase), and
 * a dead backend whose checks never run would stay up. Errors that say nothing about the backend (no
 * file descriptors, no local ports) skip the round instead of counting as failures, so a short local
 * shortage cannot mark every backend down. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "health.h"
#include "ipaddr.h"
#include "lbd.h"
#include "log.h"

#define HEALTH_TX_MAX 512               /* GET line, Host and two fixed headers: paths and hosts are <= 127 */
#define HEALTH_RX_MAX 512               /* the status line is decided within its first 13 bytes */

enum health_phase { HEALTH_IDLE, HEALTH_CONNECTING, HEALTH_SENDING, HEALTH_READING };

struct health_probe {
	struct health_ctx *h;
	ev_io io;
	ev_timer timeout;
	int fd;
	uint16_t slot;
	enum health_phase phase;
	uint8_t http;
	uint32_t want_status;
	size_t tx_len, tx_off, rx_len;
	char tx[HEALTH_TX_MAX];
	char rx[HEALTH_RX_MAX];
};

struct health_slot {
	ev_timer timer;
	uint8_t checked;
	/* Who this slot was at the last reload: a slot freed and given to another backend starts afresh. */
	struct ipaddr addr;
	char service[CFG_NAME_MAX];
	uint32_t interval_ms;
	int probe;                      /* index in probes[], -1 when no check is in flight */
	uint8_t queued;                 /* exactly one entry in the wait queue; it may outlive a reload */
	struct health_state st;
	struct health_stats stats;
};

struct health_ctx {
	struct lbd *l;
	uint64_t waited;
	struct health_probe probes[HEALTH_MAX_INFLIGHT];
	int free_probes[HEALTH_MAX_INFLIGHT];
	size_t n_free;
	ev_timer drain;                 /* starts waiting rounds from the loop, never from a probe's callback */
	uint16_t queue[LBD_MAX_SLOTS];
	size_t q_head, q_len;
	struct health_slot slots[LBD_MAX_SLOTS];
};

/* ---- pure parts ---- */

/* A backend starts up, as with keepalived's default: a service works from the first second after
 * start-up or reload, and a dead backend is taken out after `fall` failed checks (fall * interval,
 * 6 s with the defaults). Starting down would instead black-hole a whole service for rise * interval
 * on every restart of lbd. A backend that is not answering ARP is not usable anyway (mac_known). */
void health_state_init(struct health_state *s, int up)
{
	s->up = up ? 1 : 0;
	s->run = 0;
}

int health_update(struct health_state *s, int ok, unsigned rise, unsigned fall)
{
	unsigned need;

	if ((ok ? 1 : 0) == s->up) {
		s->run = 0;
		return 0;
	}
	need = s->up ? fall : rise;
	if (need == 0)
		need = 1;
	if (++s->run < need)
		return 0;
	s->up = !s->up;
	s->run = 0;
	return 1;
}

static int health_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 9112 section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. The version is
 * case-sensitive; a missing reason (and its space) and a bare LF are tolerated, as section 2.2 allows. */
int health_http_status(const char *buf, size_t len)
{
	static const char prefix[] = "HTTP/1.";
	int code = 0;
	size_t i;

	for (i = 0; i < sizeof(prefix) - 1; i++) {
		if (i >= len)
			return HEALTH_HTTP_MORE;
		if (buf[i] != prefix[i])
			return HEALTH_HTTP_BAD;
	}
	if (len <= 7)
		return HEALTH_HTTP_MORE;
	if (!health_is_digit(buf[7]))
		return HEALTH_HTTP_BAD;
	if (len <= 8)
		return HEALTH_HTTP_MORE;
	if (buf[8] != ' ')
		return HEALTH_HTTP_BAD;
	for (i = 9; i < 12; i++) {
		if (i >= len)
			return HEALTH_HTTP_MORE;
		if (!health_is_digit(buf[i]))
			return HEALTH_HTTP_BAD;
		code = code * 10 + (buf[i] - '0');
	}
	if (code < 100 || code > 599)
		return HEALTH_HTTP_BAD;
	if (len <= 12)
		return HEALTH_HTTP_MORE;
	if (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n')
		return HEALTH_HTTP_BAD;
	return code;
}

/* Visible ASCII only: the config checks this too, but a CR or LF here would forge headers. */
static int health_visible(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

int health_http_host(char *out, size_t cap, const struct ipaddr *addr, uint16_t port)
{
	char a[IPADDR_STRLEN];
	int n;

	ipaddr_str(addr, a);
	/* RFC 9110 section 7.2: the port goes into Host unless it is the default one; RFC 3986 section 3.2.2:
	 * an IPv6 literal goes in brackets, with or without a port. */
	if (ipaddr_is_v4(addr))
		n = port == 80 ? snprintf(out, cap, "%s", a) : snprintf(out, cap, "%s:%u", a, port);
	else
		n = port == 80 ? snprintf(out, cap, "[%s]", a) : snprintf(out, cap, "[%s]:%u", a, port);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}

int health_http_request(char *out, size_t cap, const char *path, const char *host)
{
	int n;

	if (!path || !host || path[0] != '/' || !health_visible(path) || !health_visible(host))
		return -1;
	n = snprintf(out, cap, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: dsrlb-health\r\nConnection: close\r\n\r\n",
		     path, host);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}

uint32_t health_jitter_ms(uint16_t slot, uint32_t interval_ms)
{
	/* (slot + 1) * 2^32 / phi mod 2^32 is the fractional part of (slot + 1) / phi in 32-bit fixed point. */
	uint32_t frac = (uint32_t)(((uint32_t)slot + 1u) * 0x9e3779b9u);

	return (uint32_t)(((uint64_t)frac * interval_ms) >> 32);
}

/* ---- accessors ---- */

const char *health_last_result(const struct health_ctx *h, uint16_t slot)
{
	if (!h || slot >= LBD_MAX_SLOTS)
		return "";
	return h->slots[slot].stats.last_result;
}

const struct health_stats *health_slot_stats(const struct health_ctx *h, uint16_t slot)
{
	if (!h || slot >= LBD_MAX_SLOTS)
		return NULL;
	return &h->slots[slot].stats;
}

uint64_t health_waited(const struct health_ctx *h)
{
	return h ? h->waited : 0;
}

/* ---- verdicts ---- */

static void health_set_healthy(struct health_ctx *h, uint16_t slot, int up, const char *why)
{
	struct lbd *l = h->l;
	struct lbd_backend *b = &l->slots[slot];
	char a[IPADDR_STRLEN];

	dp_write_lock(l);
	b->healthy = up ? 1 : 0;
	dp_rebuild_service(l, &l->services[b->service]);
	dp_write_unlock(l);
	h->slots[slot].stats.last_change_ms = clock_ms();
	log_info("backend %s of %s is %s (%s)", ipaddr_str(&b->addr, a),
		 l->services[b->service].name, up ? "up" : "down", why);
}

static void health_result(struct health_ctx *h, uint16_t slot, int ok, const char *what)
{
	struct health_slot *hs = &h->slots[slot];
	const struct cfg_service *cs = &h->l->cfg->services[h->l->slots[slot].service];
	char why[HEALTH_RESULT_MAX + 48];

	hs->stats.checks++;
	if (!ok)
		hs->stats.failures++;
	snprintf(hs->stats.last_result, sizeof(hs->stats.last_result), "%s", what);
	if (!health_update(&hs->st, ok, cs->rise, cs->fall))
		return;
	if (hs->st.up)
		snprintf(why, sizeof(why), "%s; %u check%s passed in a row", what, cs->rise, cs->rise == 1 ? "" : "s");
	else
		snprintf(why, sizeof(why), "%s; %u check%s failed in a row", what, cs->fall, cs->fall == 1 ? "" : "s");
	health_set_healthy(h, slot, hs->st.up, why);
}

static const char *health_errno_str(int err)
{
	switch (err) {
	case ECONNREFUSED: return "connection refused";
	case ECONNRESET:   return "connection reset";
	case EHOSTUNREACH: return "host unreachable";
	case ENETUNREACH:  return "network unreachable";
	case ETIMEDOUT:    return "connection timed out";
	case EPIPE:        return "connection closed";
	default:           return strerror(err);
	}
}

/* Errors of this host, not of the backend: the round is skipped, not failed. */
static int health_local_errno(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM || err == EADDRNOTAVAIL ||
	       err == EAGAIN;
}

/* ---- probes ---- */

static void health_probe_release(struct health_ctx *h, struct health_probe *p)
{
	ev_io_stop(h->l->loop, &p->io);
	ev_timer_stop(h->l->loop, &p->timeout);
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->phase = HEALTH_IDLE;
	h->slots[p->slot].probe = -1;
	h->free_probes[h->n_free++] = (int)(p - h->probes);
	if (h->q_len && !ev_is_active(&h->drain)) {
		ev_timer_set(&h->drain, 0., 0.);
		ev_timer_start(h->l->loop, &h->drain);
	}
}

static void health_probe_done(struct health_ctx *h, struct health_probe *p, int ok, const char *what)
{
	uint16_t slot = p->slot;

	health_probe_release(h, p);
	health_result(h, slot, ok, what);
}

static void health_probe_wait(struct health_ctx *h, struct health_probe *p, int events)
{
	if (ev_is_active(&p->io) && (p->io.events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(h->l->loop, &p->io);
	ev_io_set(&p->io, p->fd, events);
	ev_io_start(h->l->loop, &p->io);
}

/* The one transition function: runs the probe as far as the socket allows, then waits for it. */
static void health_probe_step(struct health_ctx *h, struct health_probe *p)
{
	char what[HEALTH_RESULT_MAX];
	socklen_t sl;
	ssize_t n;
	int err, code;

	for (;;) {
		switch (p->phase) {
		case HEALTH_IDLE:
			return;
		case HEALTH_CONNECTING:
			err = 0;
			sl = sizeof(err);
			if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
				err = errno;
			if (err == EINPROGRESS) {
				health_probe_wait(h, p, EV_WRITE);
				return;
			}
			if (err) {
				health_probe_done(h, p, 0, health_errno_str(err));
				return;
			}
			if (!p->http) {
				health_probe_done(h, p, 1, "ok");
				return;
			}
			p->phase = HEALTH_SENDING;
			break;
		case HEALTH_SENDING:
			n = send(p->fd, p->tx + p->tx_off, p->tx_len - p->tx_off, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
					health_probe_wait(h, p, EV_WRITE);
					return;
				}
				health_probe_done(h, p, 0, health_errno_str(errno));
				return;
			}
			p->tx_off += (size_t)n;
			if (p->tx_off < p->tx_len)
				break;
			p->phase = HEALTH_READING;
			health_probe_wait(h, p, EV_READ);
			return;
		case HEALTH_READING:
			n = recv(p->fd, p->rx + p->rx_len, sizeof(p->rx) - p->rx_len, 0);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
					health_probe_wait(h, p, EV_READ);
					return;
				}
				health_probe_done(h, p, 0, health_errno_str(errno));
				return;
			}
			if (n == 0) {
				health_probe_done(h, p, 0, p->rx_len ? "truncated HTTP status line" : "connection closed without a response");
				return;
			}
			p->rx_len += (size_t)n;
			code = health_http_status(p->rx, p->rx_len);
			if (code == HEALTH_HTTP_MORE && p->rx_len < sizeof(p->rx))
				break;
			if (code < 0) {
				health_probe_done(h, p, 0, "bad HTTP status line");
				return;
			}
			snprintf(what, sizeof(what), "HTTP %d", code);
			health_probe_done(h, p, (uint32_t)code == p->want_status, what);
			return;
		}
	}
}

static void health_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct health_probe *p = w->data;

	health_probe_step(p->h, p);
}

static void health_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct health_probe *p = t->data;
	static const char *what[] = {
		[HEALTH_IDLE] = "timeout",
		[HEALTH_CONNECTING] = "timeout connecting",
		[HEALTH_SENDING] = "timeout sending the request",
		[HEALTH_READING] = "timeout waiting for the HTTP status",
	};

	health_probe_done(p->h, p, 0, what[p->phase]);
}

/* Skips a round without a verdict: the reason is this host's, not the backend's. */
static void health_skip(struct health_ctx *h, uint16_t slot, const char *what, int err)
{
	char a[IPADDR_STRLEN];

	h->slots[slot].stats.skipped++;
	log_rl(LOG_LVL_WARN, "%s: check of backend %s skipped: %s%s%s", __func__,
	       ipaddr_str(&h->l->slots[slot].addr, a), what, err ? ": " : "", err ? strerror(err) : "");
}

static void health_probe_start(struct health_ctx *h, uint16_t slot)
{
	struct lbd *l = h->l;
	const struct lbd_backend *b = &l->slots[slot];
	const struct lbd_service *s = &l->services[b->service];
	const struct cfg_service *cs = &l->cfg->services[b->service];
	struct sockaddr_storage ss;
	socklen_t sslen = ipaddr_sockaddr(&b->addr, ntohs(s->port), &ss);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct health_probe *p;
	int idx, fd;

	idx = h->free_probes[h->n_free - 1];
	p = &h->probes[idx];
	p->slot = slot;
	p->http = cs->check == CFG_CHECK_HTTP;
	p->want_status = cs->check_status;
	p->tx_len = p->tx_off = p->rx_len = 0;
	if (p->http) {
		char host[IPADDR_PORT_STRLEN];
		const char *hp = cs->check_host;
		int n = 0;

		if (!hp[0]) {
			n = health_http_host(host, sizeof(host), &b->addr, cs->port);
			hp = host;
		}
		if (n >= 0)
			n = health_http_request(p->tx, sizeof(p->tx), cs->check_path, hp);
		if (n < 0) {
			health_skip(h, slot, "the check request does not fit", 0);
			return;
		}
		p->tx_len = (size_t)n;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		health_skip(h, slot, "socket", errno);
		return;
	}
	/* Close with a reset: checks leave no TIME_WAIT sockets behind, however many backends. */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	h->n_free--;
	p->fd = fd;
	p->phase = HEALTH_CONNECTING;
	h->slots[slot].probe = idx;
	ev_timer_set(&p->timeout, cs->check_timeout_ms / 1000.0, 0.);
	ev_timer_start(l->loop, &p->timeout);
	if (connect(fd, (struct sockaddr *)&ss, sslen) == 0) {
		health_probe_step(h, p);
		return;
	}
	if (errno == EINPROGRESS) {
		health_probe_wait(h, p, EV_WRITE);
		return;
	}
	if (health_local_errno(errno)) {
		int err = errno;
		health_probe_release(h, p);
		health_skip(h, slot, "connect", err);
		return;
	}
	health_probe_done(h, p, 0, health_errno_str(errno));
}

static void health_round_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct health_ctx *h = t->data;
	uint16_t slot = (uint16_t)(((char *)t - (char *)h->slots) / sizeof(h->slots[0]));
	struct health_slot *hs = &h->slots[slot];

	if (!hs->checked)
		return;
	if (hs->probe >= 0 || hs->queued) {
		/* The last round is still running or waiting: check_timeout < check_interval, so only a
		 * long wait for a free probe gets here. */
		hs->stats.skipped++;
		return;
	}
	if (!h->n_free) {
		h->waited++;
		hs->queued = 1;
		h->queue[(h->q_head + h->q_len++) % LBD_MAX_SLOTS] = slot;
		log_rl(LOG_LVL_WARN, "%d health checks in flight: the others wait; lengthen check_interval or "
		       "shorten check_timeout", HEALTH_MAX_INFLIGHT);
		return;
	}
	health_probe_start(h, slot);
}

static void health_drain_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct health_ctx *h = t->data;

	while (h->n_free && h->q_len) {
		uint16_t slot = h->queue[h->q_head];
		struct health_slot *hs = &h->slots[slot];

		h->q_head = (h->q_head + 1) % LBD_MAX_SLOTS;
		h->q_len--;
		hs->queued = 0;
		if (hs->checked && hs->probe < 0)
			health_probe_start(h, slot);
	}
}

/* ---- slots ---- */

static void health_slot_timer(struct health_ctx *h, uint16_t slot, uint32_t interval_ms)
{
	struct health_slot *hs = &h->slots[slot];

	if (interval_ms < 10)
		interval_ms = 10;
	ev_timer_stop(h->l->loop, &hs->timer);
	ev_timer_set(&hs->timer, health_jitter_ms(slot, interval_ms) / 1000.0, interval_ms / 1000.0);
	ev_timer_start(h->l->loop, &hs->timer);
	hs->interval_ms = interval_ms;
}

static void health_slot_stop(struct health_ctx *h, uint16_t slot)
{
	struct health_slot *hs = &h->slots[slot];

	if (hs->probe >= 0)
		health_probe_release(h, &h->probes[hs->probe]);
	ev_timer_stop(h->l->loop, &hs->timer);
	hs->checked = 0;
	memset(&hs->addr, 0, sizeof(hs->addr));
	hs->service[0] = 0;
	memset(&hs->stats, 0, sizeof(hs->stats));
}

static void health_slot_start(struct health_ctx *h, uint16_t slot, uint32_t interval_ms)
{
	struct health_slot *hs = &h->slots[slot];
	const struct lbd_backend *b = &h->l->slots[slot];

	hs->checked = 1;
	hs->addr = b->addr;
	snprintf(hs->service, sizeof(hs->service), "%s", h->l->services[b->service].name);
	/* dp gives a new slot healthy = 1, and a slot that was unchecked was kept up (check = none). */
	health_state_init(&hs->st, b->healthy);
	memset(&hs->stats, 0, sizeof(hs->stats));
	health_slot_timer(h, slot, interval_ms);
}

void health_reload(struct health_ctx *h)
{
	struct lbd *l;
	uint8_t want[LBD_MAX_SLOTS];

	if (!h)
		return;
	l = h->l;
	memset(want, 0, sizeof(want));
	/* Only the backends proper: the sorry backend is a last resort that is used whatever its health. */
	for (size_t i = 0; i < l->n_services; i++) {
		if (l->cfg->services[i].check == CFG_CHECK_NONE)
			continue;
		for (size_t j = 0; j < l->services[i].n_slots; j++)
			want[l->services[i].slots[j]] = 1;
	}
	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++) {
		struct health_slot *hs = &h->slots[i];
		struct lbd_backend *b = &l->slots[i];
		int same = hs->checked && !ipaddr_is_none(&b->addr) && ipaddr_eq(&b->addr, &hs->addr) &&
			   strcmp(l->services[b->service].name, hs->service) == 0;

		if (hs->checked && (!want[i] || !same))
			health_slot_stop(h, i);
		/* A backend that is no longer checked is up: check = none means always up. */
		if (!want[i] && !ipaddr_is_none(&b->addr) && !b->healthy)
			health_set_healthy(h, (uint16_t)i, 1, "health check disabled");
		if (!want[i])
			continue;
		if (!hs->checked)
			health_slot_start(h, (uint16_t)i, l->cfg->services[b->service].check_interval_ms);
		else if (hs->interval_ms != l->cfg->services[b->service].check_interval_ms)
			health_slot_timer(h, (uint16_t)i, l->cfg->services[b->service].check_interval_ms);
	}
}

struct health_ctx *health_create(struct lbd *l)
{
	struct health_ctx *h = calloc(1, sizeof(*h));

	if (!h) {
		log_err("%s: out of memory", __func__);
		return NULL;
	}
	h->l = l;
	for (int i = 0; i < HEALTH_MAX_INFLIGHT; i++) {
		struct health_probe *p = &h->probes[i];
		p->h = h;
		p->fd = -1;
		ev_init(&p->io, health_io_cb);
		p->io.data = p;
		ev_init(&p->timeout, health_timeout_cb);
		p->timeout.data = p;
		h->free_probes[h->n_free++] = HEALTH_MAX_INFLIGHT - 1 - i;
	}
	ev_init(&h->drain, health_drain_cb);
	h->drain.data = h;
	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++) {
		ev_init(&h->slots[i].timer, health_round_cb);
		h->slots[i].timer.data = h;
		h->slots[i].probe = -1;
	}
	health_reload(h);
	return h;
}

void health_destroy(struct health_ctx *h)
{
	if (!h)
		return;
	for (unsigned i = 0; i < LBD_MAX_SLOTS; i++)
		if (h->slots[i].checked)
			health_slot_stop(h, (uint16_t)i);
	ev_timer_stop(h->l->loop, &h->drain);
	free(h);
}
