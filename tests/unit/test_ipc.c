/* Unit tests for common/ipc.c, the length-prefixed control-socket framing: a server on a temporary path
 * runs its own libev loop in a thread while this thread plays well-behaved and hostile clients (raw
 * sockets, the blocking ipc_call and the asynchronous ipc_client on a second loop). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/ipc.h"

#define WAIT_MS 3000   /* upper bound on anything that should happen promptly */

/* A server on <tmpdir>/ctl.sock whose loop runs in its own thread. Requests starting with '!' make the
 * handler fail them (bad request); "BIG" makes it claim an oversized response; "LARGE" gets a 3 MiB
 * answer; a request starting with '?', or any request of a client without rights, is answered "no"
 * and refused (IPC_REFUSED); anything else is echoed. The access function gives every client the
 * rights in `grant` and records the credentials it saw. */
struct srv {
	char dir[64];
	char path[128];
	struct ev_loop *loop;
	struct ipc_server *s;
	ev_async wake;
	pthread_t thr;
	int running;
	unsigned calls;   /* handler invocations; read only while the thread is paused */
	enum ipc_access grant;
	struct ipc_peer last_peer;
	uid_t cred_uid;
	gid_t cred_gid;
	size_t cred_groups;
};

#define LARGE_RESP (3u << 20)

static enum ipc_access srv_access(void *arg, const struct ipc_cred *cred)
{
	struct srv *v = arg;

	v->cred_uid = cred->uid;
	v->cred_gid = cred->gid;
	v->cred_groups = cred->n_groups;
	return v->grant;
}

static int srv_handler(void *arg, const struct ipc_peer *peer, const uint8_t *req, size_t len, uint8_t **resp,
		       size_t *resp_len)
{
	struct srv *v = arg;

	v->calls++;
	v->last_peer = *peer;
	if (len > 0 && req[0] == '!')
		return -1;
	if (peer->access == IPC_ACCESS_NONE || (len > 0 && req[0] == '?')) {
		*resp = malloc(2);
		memcpy(*resp, "no", 2);
		*resp_len = 2;
		return IPC_REFUSED;
	}
	if (len == 5 && !memcmp(req, "LARGE", 5)) {
		*resp = malloc(LARGE_RESP);
		for (size_t i = 0; *resp && i < LARGE_RESP; i++)
			(*resp)[i] = (uint8_t)(i * 7 + (i >> 12));
		*resp_len = *resp ? LARGE_RESP : 0;
		return *resp ? 0 : -1;
	}
	if (len == 3 && !memcmp(req, "BIG", 3)) {
		*resp = malloc(1);
		*resp_len = IPC_MAX_MSG + 1;
		return 0;
	}
	*resp = malloc(len ? len : 1);
	if (!*resp)
		return -1;
	memcpy(*resp, req, len);
	*resp_len = len;
	return 0;
}

static void srv_wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void *srv_main(void *arg)
{
	struct srv *v = arg;

	ev_run(v->loop, 0);
	return NULL;
}

static void srv_resume(struct srv *v)
{
	assert_int_equal(pthread_create(&v->thr, NULL, srv_main, v), 0);
	v->running = 1;
}

/* Stops the server's thread so its counters can be read. */
static void srv_pause(struct srv *v)
{
	if (!v->running)
		return;
	ev_async_send(v->loop, &v->wake);
	pthread_join(v->thr, NULL);
	v->running = 0;
}

static int srv_setup(void **state)
{
	struct srv *v = calloc(1, sizeof(*v));

	if (!v)
		return -1;
	snprintf(v->dir, sizeof(v->dir), "/tmp/dsrlb-test-ipc-XXXXXX");
	if (!mkdtemp(v->dir))
		return -1;
	snprintf(v->path, sizeof(v->path), "%s/ctl.sock", v->dir);
	v->loop = ev_loop_new(EVFLAG_AUTO);
	ev_async_init(&v->wake, srv_wake_cb);
	ev_async_start(v->loop, &v->wake);
	v->grant = IPC_ACCESS_CHANGE;
	v->s = ipc_server_create(v->loop, v->path, srv_access, srv_handler, v);
	if (!v->s)
		return -1;
	srv_resume(v);
	*state = v;
	return 0;
}

static int srv_teardown(void **state)
{
	struct srv *v = *state;
	char extra[160];

	srv_pause(v);
	ipc_server_destroy(v->s);
	ev_async_stop(v->loop, &v->wake);
	ev_loop_destroy(v->loop);
	/* Tests may leave a second socket here. */
	snprintf(extra, sizeof(extra), "%s/other.sock", v->dir);
	unlink(extra);
	unlink(v->path);
	rmdir(v->dir);
	free(v);
	return 0;
}

static struct ipc_server_stats srv_stats(struct srv *v)
{
	struct ipc_server_stats st;

	srv_pause(v);
	ipc_server_stats(v->s, &st);
	srv_resume(v);
	return st;
}

static uint64_t srv_bad(struct srv *v)
{
	return srv_stats(v).bad_requests;
}

/* Raw clients. */

static int raw_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int raw_send(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int raw_send_msg(int fd, const void *body, uint32_t len)
{
	uint8_t hdr[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len };

	if (raw_send(fd, hdr, 4) < 0)
		return -1;
	return raw_send(fd, body, len);
}

/* Reads exactly len bytes before the deadline. Returns 0, or -1 on EOF / error / timeout. */
static int raw_recv(int fd, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = clock_ms();
		if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
			return -1;
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one framed response; returns its length or -1. */
static long raw_recv_msg(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;
	uint8_t hdr[4];
	uint32_t len;

	if (raw_recv(fd, hdr, 4, deadline) < 0)
		return -1;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (len > cap || raw_recv(fd, buf, len, deadline) < 0)
		return -1;
	return (long)len;
}

/* Waits for the server to close the connection: 1 on EOF or reset, 0 if it sent data, -1 on timeout. */
static int raw_wait_closed(int fd, int timeout_ms)
{
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;
	uint8_t b[64];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = clock_ms();
		if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
			return -1;
		ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
		if (n > 0)
			return 0;
	}
}

static void call_ok(const char *path, const void *req, size_t len)
{
	uint8_t *resp = NULL;
	size_t rlen = 0;
	char err[256] = "";

	if (ipc_call(path, req, len, &resp, &rlen, WAIT_MS, err, sizeof(err)) < 0)
		fail_msg("ipc_call: %s", err);
	assert_int_equal(rlen, len);
	if (len)
		assert_memory_equal(resp, req, len);
	assert_non_null(resp);
	free(resp);
}

/* ipc_call until it succeeds, for states the server reaches asynchronously (freed client slots). */
static void call_ok_eventually(const char *path)
{
	uint64_t deadline = clock_ms() + WAIT_MS;
	uint8_t *resp;
	size_t rlen;
	char err[256];

	while (ipc_call(path, (const uint8_t *)"ping", 4, &resp, &rlen, 500, err, sizeof(err)) < 0) {
		if (clock_ms() >= deadline)
			fail_msg("server never answered again: %s", err);
		usleep(10000);
	}
	assert_int_equal(rlen, 4);
	free(resp);
}

/* A listening socket that never accepts nor answers. */
static int mute_listener(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 16), 0);
	return fd;
}

/* A socket file nobody listens on, as a crashed daemon leaves behind. */
static void stale_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
}

static void test_echo_raw(void **state)
{
	struct srv *v = *state;
	uint8_t buf[64];
	int fd = raw_connect(v->path);

	assert_true(fd >= 0);
	/* Several requests in turn on one connection. */
	for (int i = 0; i < 5; i++) {
		char msg[16];
		int n = snprintf(msg, sizeof(msg), "hello %d", i);
		assert_int_equal(raw_send_msg(fd, msg, (uint32_t)n), 0);
		assert_int_equal(raw_recv_msg(fd, buf, sizeof(buf), WAIT_MS), n);
		assert_memory_equal(buf, msg, (size_t)n);
	}
	/* A request trickled in byte by byte. */
	static const uint8_t slow[] = { 0, 0, 0, 3, 'a', 'b', 'c' };
	for (size_t i = 0; i < sizeof(slow); i++) {
		assert_int_equal(raw_send(fd, slow + i, 1), 0);
		usleep(1000);
	}
	assert_int_equal(raw_recv_msg(fd, buf, sizeof(buf), WAIT_MS), 3);
	assert_memory_equal(buf, "abc", 3);
	close(fd);
	assert_int_equal(srv_bad(v), 0);
}

static void test_call_round_trip(void **state)
{
	struct srv *v = *state;
	size_t big = IPC_MAX_REQ;   /* the largest request */
	uint8_t *req = malloc(big), *resp = NULL;
	size_t rlen = 0;
	char err[256] = "";

	call_ok(v->path, "status", 6);
	call_ok(v->path, "", 0);
	for (size_t i = 0; i < big; i++)
		req[i] = (uint8_t)(i * 7 + (i >> 12));
	call_ok(v->path, req, big);
	free(req);
	/* A response larger than any socket buffer: partial writes and reads. */
	if (ipc_call(v->path, (const uint8_t *)"LARGE", 5, &resp, &rlen, WAIT_MS, err, sizeof(err)) < 0)
		fail_msg("ipc_call: %s", err);
	assert_int_equal(rlen, LARGE_RESP);
	for (size_t i = 0; i < LARGE_RESP; i += 4099)
		assert_int_equal(resp[i], (uint8_t)(i * 7 + (i >> 12)));
	free(resp);
	for (int i = 0; i < 50; i++)
		call_ok(v->path, "again", 5);
	srv_pause(v);
	assert_int_equal(v->calls, 54);
	srv_resume(v);
	struct ipc_server_stats st = srv_stats(v);
	assert_int_equal(st.bad_requests + st.refused + st.idle_closed + st.evicted + st.oversized, 0);
}

static void test_oversized_prefix(void **state)
{
	struct srv *v = *state;
	static const uint8_t huge[4] = { 0xff, 0xff, 0xff, 0xff };
	uint8_t just_over[4] = { (uint8_t)((IPC_MAX_REQ + 1) >> 24), (uint8_t)((IPC_MAX_REQ + 1) >> 16),
				 (uint8_t)((IPC_MAX_REQ + 1) >> 8), (uint8_t)(IPC_MAX_REQ + 1) };
	int fd;

	fd = raw_connect(v->path);
	assert_int_equal(raw_send(fd, huge, 4), 0);
	assert_int_equal(raw_wait_closed(fd, WAIT_MS), 1);
	close(fd);
	assert_int_equal(srv_stats(v).oversized, 1);

	fd = raw_connect(v->path);
	assert_int_equal(raw_send(fd, just_over, 4), 0);
	assert_int_equal(raw_wait_closed(fd, WAIT_MS), 1);
	close(fd);
	assert_int_equal(srv_stats(v).oversized, 2);

	/* A good request first, then garbage on the same connection. */
	fd = raw_connect(v->path);
	assert_int_equal(raw_send_msg(fd, "ok", 2), 0);
	uint8_t buf[8];
	assert_int_equal(raw_recv_msg(fd, buf, sizeof(buf), WAIT_MS), 2);
	assert_int_equal(raw_send(fd, huge, 4), 0);
	assert_int_equal(raw_wait_closed(fd, WAIT_MS), 1);
	close(fd);
	assert_int_equal(srv_stats(v).oversized, 3);
	assert_int_equal(srv_bad(v), 0);
	srv_pause(v);
	assert_int_equal(v->calls, 1);   /* the handler never saw the garbage */
	srv_resume(v);
	call_ok(v->path, "still here", 10);
}

static void test_handler_refuses(void **state)
{
	struct srv *v = *state;
	uint8_t *resp = (uint8_t *)1;
	size_t rlen = 99;
	char err[256] = "";
	int fd;

	assert_int_equal(ipc_call(v->path, (const uint8_t *)"!bad", 4, &resp, &rlen, WAIT_MS, err, sizeof(err)), -1);
	assert_null(resp);
	assert_int_equal(rlen, 0);
	assert_non_null(strstr(err, v->path));
	assert_int_equal(srv_bad(v), 1);

	/* A response the handler claims is larger than the framing allows is refused the same way. */
	fd = raw_connect(v->path);
	assert_int_equal(raw_send_msg(fd, "BIG", 3), 0);
	assert_int_equal(raw_wait_closed(fd, WAIT_MS), 1);
	close(fd);
	assert_int_equal(srv_bad(v), 2);
	call_ok(v->path, "fine", 4);
}

static void test_half_message(void **state)
{
	struct srv *v = *state;
	uint8_t body[50];
	int fd;

	memset(body, 'x', sizeof(body));
	/* A length prefix cut short. */
	fd = raw_connect(v->path);
	assert_int_equal(raw_send(fd, "\0\0", 2), 0);
	close(fd);
	/* A body cut short. */
	fd = raw_connect(v->path);
	assert_int_equal(raw_send(fd, "\0\0\0\x64", 4), 0);
	assert_int_equal(raw_send(fd, body, sizeof(body)), 0);
	close(fd);
	/* The largest allowed length, then nothing. */
	fd = raw_connect(v->path);
	uint8_t max[4] = { (uint8_t)(IPC_MAX_REQ >> 24), (uint8_t)(IPC_MAX_REQ >> 16), (uint8_t)(IPC_MAX_REQ >> 8),
			   (uint8_t)IPC_MAX_REQ };
	assert_int_equal(raw_send(fd, max, 4), 0);
	assert_int_equal(raw_send(fd, body, sizeof(body)), 0);
	close(fd);
	/* A request, then a close before reading the response. */
	fd = raw_connect(v->path);
	assert_int_equal(raw_send_msg(fd, body, sizeof(body)), 0);
	close(fd);
	call_ok(v->path, "alive", 5);
	srv_pause(v);
	struct ipc_server_stats st;
	ipc_server_stats(v->s, &st);
	assert_int_equal(st.bad_requests, 0);
	assert_true(v->calls == 1 || v->calls == 2);
	srv_resume(v);
}

static void test_too_many_clients(void **state)
{
	struct srv *v = *state;
	enum { N = 70 };
	int fds[N], answered = 0, dropped = 0;
	uint8_t buf[16];

	/* Blocking connects: each waits for the server thread to accept when the backlog is full. */
	for (int i = 0; i < N; i++) {
		fds[i] = raw_connect(v->path);
		assert_true(fds[i] >= 0);
	}
	/* The server accepts asynchronously: let it take every connection before any of them talks. */
	for (uint64_t deadline = clock_ms() + WAIT_MS; srv_stats(v).evicted < N - IPC_MAX_CLIENTS;)
		assert_true(clock_ms() < deadline), usleep(1000);
	for (int i = 0; i < N; i++)
		raw_send_msg(fds[i], "hi", 2);   /* may fail with EPIPE for an evicted client */
	for (int i = 0; i < N; i++) {
		long n = raw_recv_msg(fds[i], buf, sizeof(buf), WAIT_MS);
		if (n == 2)
			answered++;
		else
			dropped++;
	}
	/* Each connection past the last slot evicted the client silent longest: one of the first. */
	assert_int_equal(answered, IPC_MAX_CLIENTS);
	assert_int_equal(dropped, N - IPC_MAX_CLIENTS);
	for (int i = 0; i < N - IPC_MAX_CLIENTS; i++)
		assert_int_equal(raw_recv_msg(fds[i], buf, sizeof(buf), 10), -1);
	assert_int_equal(srv_stats(v).evicted, N - IPC_MAX_CLIENTS);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	call_ok_eventually(v->path);
}

/* A client that talks keeps its slot however many silent ones come after it: vrrpd's link against a
 * flood of silent connections. */
static void test_talker_never_evicted(void **state)
{
	struct srv *v = *state;
	enum { SILENT = 150 };
	int talker, fds[SILENT], closed = 0;
	uint8_t buf[16];

	talker = raw_connect(v->path);
	assert_true(talker >= 0);
	for (int i = 0; i < SILENT; i++) {
		fds[i] = raw_connect(v->path);
		assert_true(fds[i] >= 0);
		assert_int_equal(raw_send_msg(talker, "ping", 4), 0);
		assert_int_equal(raw_recv_msg(talker, buf, sizeof(buf), WAIT_MS), 4);
	}
	for (int i = 0; i < SILENT; i++) {
		closed += raw_wait_closed(fds[i], 20) == 1;
		close(fds[i]);
	}
	assert_int_equal(closed, SILENT - (IPC_MAX_CLIENTS - 1));
	assert_int_equal(srv_stats(v).evicted, SILENT - (IPC_MAX_CLIENTS - 1));
	close(talker);
}

/* A silent client is closed at the idle deadline, one that trickles a request at the (shorter)
 * deadline of a message in progress, one that does not read its response too; a client that asks
 * now and then stays. */
static void test_deadlines(void **state)
{
	struct srv *v = *state;
	uint8_t buf[16];
	int silent, trickle, talker, deaf;
	uint64_t t0;

	srv_pause(v);
	ipc_server_set_deadlines(v->s, 300, 600);
	srv_resume(v);
	t0 = clock_ms();
	silent = raw_connect(v->path);
	trickle = raw_connect(v->path);
	talker = raw_connect(v->path);
	deaf = raw_connect(v->path);
	/* LARGE fills the socket buffers: the server waits on a client that never reads. */
	assert_int_equal(raw_send_msg(deaf, "LARGE", 5), 0);
	assert_int_equal(raw_send(trickle, "\0\0\0\x10", 4), 0);
	for (int i = 0; i < 9; i++) {
		usleep(100000);
		raw_send(trickle, "x", 1);   /* fails once the server has closed it */
		assert_int_equal(raw_send_msg(talker, "ping", 4), 0);
		assert_int_equal(raw_recv_msg(talker, buf, sizeof(buf), WAIT_MS), 4);
	}
	/* 900 ms in: the trickler (300 ms), the deaf one (300 ms) and the silent one (600 ms) are gone. */
	assert_int_equal(raw_wait_closed(silent, 10), 1);
	assert_int_equal(raw_wait_closed(trickle, 10), 1);
	assert_true(clock_ms() - t0 >= 600);
	struct ipc_server_stats st = srv_stats(v);
	assert_int_equal(st.idle_closed, 3);
	assert_int_equal(st.bad_requests, 0);
	assert_int_equal(raw_send_msg(talker, "ping", 4), 0);
	assert_int_equal(raw_recv_msg(talker, buf, sizeof(buf), WAIT_MS), 4);
	close(silent);
	close(trickle);
	close(talker);
	close(deaf);
}

/* The handler sees the rights the access function gave from the peer's credentials; a refused
 * request is answered and counted, and a client with no rights is closed after its answer. */
static void test_access(void **state)
{
	struct srv *v = *state;
	uint8_t buf[16];
	int fd;

	fd = raw_connect(v->path);
	assert_int_equal(raw_send_msg(fd, "?change", 7), 0);
	assert_int_equal(raw_recv_msg(fd, buf, sizeof(buf), WAIT_MS), 2);
	assert_memory_equal(buf, "no", 2);
	/* Refused but entitled to ask: the connection stays. */
	assert_int_equal(raw_send_msg(fd, "hi", 2), 0);
	assert_int_equal(raw_recv_msg(fd, buf, sizeof(buf), WAIT_MS), 2);
	assert_memory_equal(buf, "hi", 2);
	close(fd);
	srv_pause(v);
	assert_int_equal(v->cred_uid, getuid());
	assert_int_equal(v->cred_gid, getgid());
	assert_int_equal(v->cred_groups, (size_t)getgroups(0, NULL));
	assert_int_equal(v->last_peer.uid, getuid());
	assert_int_equal(v->last_peer.access, IPC_ACCESS_CHANGE);
	v->grant = IPC_ACCESS_NONE;
	srv_resume(v);

	fd = raw_connect(v->path);
	assert_int_equal(raw_send_msg(fd, "hi", 2), 0);
	assert_int_equal(raw_recv_msg(fd, buf, sizeof(buf), WAIT_MS), 2);
	assert_memory_equal(buf, "no", 2);
	assert_int_equal(raw_wait_closed(fd, WAIT_MS), 1);
	close(fd);
	struct ipc_server_stats st = srv_stats(v);
	assert_int_equal(st.refused, 2);
	assert_int_equal(st.bad_requests, 0);
}

static void test_socket_mode(void **state)
{
	struct srv *v = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char path[160];
	struct stat st;
	struct ipc_server *s;
	mode_t old;

	assert_int_equal(stat(v->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0666);

	/* Whatever the process umask. */
	snprintf(path, sizeof(path), "%s/other.sock", v->dir);
	old = umask(0);
	s = ipc_server_create(loop, path, srv_access, srv_handler, v);
	assert_int_equal(umask(old), 0);
	assert_non_null(s);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0666);
	ipc_server_destroy(s);
	assert_int_equal(stat(path, &st), -1);   /* destroy removes the socket file */
	old = umask(077);
	s = ipc_server_create(loop, path, srv_access, srv_handler, v);
	umask(old);
	assert_non_null(s);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0666);
	ipc_server_destroy(s);
	ev_loop_destroy(loop);
}

static void test_path_in_use(void **state)
{
	struct srv *v = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char path[160], toolong[200];
	struct ipc_server *s;

	/* A live server keeps its path... */
	errno = 0;
	assert_null(ipc_server_create(loop, v->path, srv_access, srv_handler, v));
	assert_int_equal(errno, EADDRINUSE);
	call_ok(v->path, "first", 5);

	/* ...a dead one's socket file is replaced. */
	snprintf(path, sizeof(path), "%s/other.sock", v->dir);
	stale_socket(path);
	s = ipc_server_create(loop, path, srv_access, srv_handler, v);
	assert_non_null(s);
	ipc_server_destroy(s);

	memset(toolong, 'a', sizeof(toolong) - 1);
	toolong[0] = '/';
	toolong[sizeof(toolong) - 1] = 0;
	errno = 0;
	assert_null(ipc_server_create(loop, toolong, srv_access, srv_handler, v));
	assert_int_equal(errno, ENAMETOOLONG);
	ipc_server_destroy(NULL);
	ev_loop_destroy(loop);
}

static void test_call_missing(void **state)
{
	struct srv *v = *state;
	char path[160], err[256] = "", toolong[200];
	uint8_t *resp = (uint8_t *)1;
	size_t rlen = 99;
	uint64_t t0;

	snprintf(path, sizeof(path), "%s/nobody.sock", v->dir);
	t0 = clock_ms();
	assert_int_equal(ipc_call(path, (const uint8_t *)"x", 1, &resp, &rlen, 5000, err, sizeof(err)), -1);
	assert_true(clock_ms() - t0 < 100);
	assert_non_null(strstr(err, path));
	assert_null(resp);
	assert_int_equal(rlen, 0);

	/* A stale socket file: refused, just as fast. */
	stale_socket(path);
	t0 = clock_ms();
	err[0] = 0;
	assert_int_equal(ipc_call(path, (const uint8_t *)"x", 1, &resp, &rlen, 5000, err, sizeof(err)), -1);
	assert_true(clock_ms() - t0 < 100);
	assert_non_null(strstr(err, path));
	unlink(path);

	memset(toolong, 'b', sizeof(toolong) - 1);
	toolong[sizeof(toolong) - 1] = 0;
	err[0] = 0;
	assert_int_equal(ipc_call(toolong, (const uint8_t *)"x", 1, &resp, &rlen, 5000, err, sizeof(err)), -1);
	assert_non_null(strstr(err, toolong));
}

static void test_call_timeout(void **state)
{
	struct srv *v = *state;
	char path[160], err[256] = "";
	uint8_t *resp = (uint8_t *)1;
	size_t rlen = 99;
	uint64_t t0, dt;
	int lfd;

	snprintf(path, sizeof(path), "%s/other.sock", v->dir);
	lfd = mute_listener(path);
	t0 = clock_ms();
	assert_int_equal(ipc_call(path, (const uint8_t *)"hello", 5, &resp, &rlen, 300, err, sizeof(err)), -1);
	dt = clock_ms() - t0;
	/* The deadline holds in total: never before it, and not a second wait after it (a busy machine may
	 * wake the caller late, so the upper bound is below twice the timeout, not just above it). */
	assert_true(dt >= 299 && dt < 590);
	assert_non_null(strstr(err, "timeout"));
	assert_non_null(strstr(err, path));
	assert_null(resp);

	/* Again, with the first connection gone from the backlog. */
	close(accept(lfd, NULL, NULL));
	t0 = clock_ms();
	err[0] = 0;
	assert_int_equal(ipc_call(path, (const uint8_t *)"hello", 5, &resp, &rlen, 200, err, sizeof(err)), -1);
	dt = clock_ms() - t0;
	assert_true(dt >= 199 && dt < 300);
	assert_non_null(strstr(err, "timeout"));
	/* A request larger than the socket buffers, never read: the send phase times out too. */
	size_t big = 4u << 20;
	uint8_t *req = calloc(1, big);
	t0 = clock_ms();
	assert_int_equal(ipc_call(path, req, big, &resp, &rlen, 200, err, sizeof(err)), -1);
	dt = clock_ms() - t0;
	assert_true(dt >= 199 && dt < 300);
	assert_non_null(strstr(err, "timeout"));
	free(req);
	close(lfd);
	unlink(path);
}

/* The asynchronous client, on a loop of this thread. */

struct reply_log {
	int calls, nulls;
	uint8_t last[64];
	size_t last_len;
	uint64_t at_ms;
	struct ipc_client *c;
	int chain;        /* requests still to send from the callback */
	int destroy;      /* destroy the client from the callback */
};

static void reply_cb(void *arg, const uint8_t *resp, size_t len)
{
	struct reply_log *r = arg;

	r->calls++;
	r->at_ms = clock_ms();
	if (!resp) {
		r->nulls++;
	} else {
		r->last_len = len;
		memcpy(r->last, resp, len < sizeof(r->last) ? len : sizeof(r->last));
	}
	if (r->chain > 0) {
		r->chain--;
		assert_int_equal(ipc_client_send(r->c, (const uint8_t *)"chain", 5, WAIT_MS), 0);
	}
	if (r->destroy) {
		ipc_client_destroy(r->c);
		r->c = NULL;
	}
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
}

/* Runs loop until r has seen `calls` callbacks or ms pass; then keeps running `linger_ms` more so
 * duplicate callbacks would show. */
static void run_until(struct ev_loop *loop, struct reply_log *r, int calls, int ms, int linger_ms)
{
	uint64_t deadline = clock_ms() + (uint64_t)ms;
	ev_timer tick;

	ev_timer_init(&tick, tick_cb, 0.005, 0.005);
	ev_timer_start(loop, &tick);
	while (r->calls < calls && clock_ms() < deadline)
		ev_run(loop, EVRUN_ONCE);
	deadline = clock_ms() + (uint64_t)linger_ms;
	while (clock_ms() < deadline)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &tick);
}

static void test_client_round_trip(void **state)
{
	struct srv *v = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct reply_log r = { 0 };
	struct ipc_client *c = ipc_client_create(loop, v->path, reply_cb, &r);

	assert_non_null(c);
	r.c = c;
	assert_false(ipc_client_busy(c));
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"one", 3, WAIT_MS), 0);
	assert_true(ipc_client_busy(c));
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"two", 3, WAIT_MS), -1);   /* one in flight */
	run_until(loop, &r, 1, WAIT_MS, 50);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.nulls, 0);
	assert_int_equal(r.last_len, 3);
	assert_memory_equal(r.last, "one", 3);
	assert_false(ipc_client_busy(c));

	/* The connection is reused; a callback may send the next request itself. */
	r.chain = 3;
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"", 0, WAIT_MS), 0);
	run_until(loop, &r, 5, WAIT_MS, 50);
	assert_int_equal(r.calls, 5);
	assert_int_equal(r.nulls, 0);
	assert_memory_equal(r.last, "chain", 5);

	/* A callback may also destroy its client. */
	r.destroy = 1;
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"bye", 3, WAIT_MS), 0);
	run_until(loop, &r, 6, WAIT_MS, 50);
	assert_int_equal(r.calls, 6);
	assert_null(r.c);
	ev_loop_destroy(loop);
	ipc_client_destroy(NULL);
}

static void test_client_timeout(void **state)
{
	struct srv *v = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct reply_log r = { 0 };
	char path[160];
	struct ipc_client *c;
	uint64_t t0;
	int lfd;

	snprintf(path, sizeof(path), "%s/other.sock", v->dir);
	lfd = mute_listener(path);
	c = ipc_client_create(loop, path, reply_cb, &r);
	r.c = c;
	t0 = clock_ms();
	ev_now_update(loop);
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"hello", 5, 200), 0);
	run_until(loop, &r, 1, WAIT_MS, 300);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.nulls, 1);
	assert_true(r.at_ms - t0 >= 199 && r.at_ms - t0 < 300);
	assert_false(ipc_client_busy(c));

	/* The next request starts over on a new connection, and times out once more. */
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"hello", 5, 100), 0);
	run_until(loop, &r, 2, WAIT_MS, 200);
	assert_int_equal(r.calls, 2);
	assert_int_equal(r.nulls, 2);
	ipc_client_destroy(c);
	close(lfd);
	unlink(path);
	ev_loop_destroy(loop);
}

static void test_client_dead_server(void **state)
{
	struct srv *v = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct reply_log r = { 0 };
	char path[160];
	struct ipc_client *c;
	int lfd, afd;

	/* No socket file at all. */
	snprintf(path, sizeof(path), "%s/other.sock", v->dir);
	c = ipc_client_create(loop, path, reply_cb, &r);
	r.c = c;
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"x", 1, WAIT_MS), 0);
	assert_true(ipc_client_busy(c));
	run_until(loop, &r, 1, WAIT_MS, 100);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.nulls, 1);
	assert_false(ipc_client_busy(c));

	/* A stale socket file. */
	stale_socket(path);
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"x", 1, WAIT_MS), 0);
	run_until(loop, &r, 2, WAIT_MS, 100);
	assert_int_equal(r.calls, 2);
	assert_int_equal(r.nulls, 2);

	/* A server that dies with the request in flight. */
	lfd = mute_listener(path);
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"x", 1, WAIT_MS), 0);
	afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	close(afd);
	close(lfd);
	run_until(loop, &r, 3, WAIT_MS, 100);
	assert_int_equal(r.calls, 3);
	assert_int_equal(r.nulls, 3);

	/* Destroying a client with a request in flight: no callback, nothing left on the loop. */
	lfd = mute_listener(path);
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"x", 1, 50), 0);
	ipc_client_destroy(c);
	r.c = NULL;
	run_until(loop, &r, 4, 150, 0);
	assert_int_equal(r.calls, 3);
	close(lfd);
	unlink(path);
	ev_loop_destroy(loop);
}

/* A server that goes away between requests answers no request: no callback, and the next request
 * reconnects to its successor. */
static void test_client_server_restart_idle(void **state)
{
	struct srv *v = *state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct reply_log r = { 0 };
	struct ipc_client *c = ipc_client_create(loop, v->path, reply_cb, &r);

	r.c = c;
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"one", 3, WAIT_MS), 0);
	run_until(loop, &r, 1, WAIT_MS, 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.nulls, 0);

	/* The server restarts while the client is idle. */
	srv_pause(v);
	ipc_server_destroy(v->s);
	v->s = ipc_server_create(v->loop, v->path, srv_access, srv_handler, v);
	assert_non_null(v->s);
	srv_resume(v);
	run_until(loop, &r, 2, 200, 0);
	assert_int_equal(r.calls, 1);

	/* The next request reconnects and gets through, without a failure on the old connection. */
	assert_int_equal(ipc_client_send(c, (const uint8_t *)"two", 3, WAIT_MS), 0);
	run_until(loop, &r, 2, WAIT_MS, 50);
	assert_int_equal(r.calls, 2);
	assert_int_equal(r.nulls, 0);
	assert_memory_equal(r.last, "two", 3);
	ipc_client_destroy(c);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_echo_raw, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_call_round_trip, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_oversized_prefix, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_handler_refuses, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_half_message, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_too_many_clients, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_talker_never_evicted, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_deadlines, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_access, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_socket_mode, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_path_in_use, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_call_missing, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_call_timeout, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_round_trip, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_timeout, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_dead_server, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_server_restart_idle, srv_setup, srv_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
