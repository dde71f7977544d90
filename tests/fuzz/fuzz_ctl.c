/* Fuzz target: lbd's control socket as a local client reaches it: the framing of common/ipc.c (4-byte
 * length, IPC_MAX_REQ, pipelined requests, a client closing mid-message) and lbd's request handler
 * (lbd/ctl.c ctl_handle: LbdRequest decoding, status and flow listings, SET_MODE, DRAIN/UNDRAIN with
 * hostile service and backend names, GARP; RELOAD answers an error here).
 *
 * ipc.c and ctl.c are included so the server's connection can be built around one end of a Unix
 * socketpair (what ipc_accept_cb does for an accepted client) with no socket file; the harness writes
 * the other end and reads the responses.
 *
 * Input: one byte of mode, then chunks (2-byte length, bytes). Mode bit 0 clear: each chunk is an
 * LbdRequest the harness frames; set: the chunks are raw stream bytes. Bit 1: lbd is active and owns
 * the VIPs. Bit 2: the degraded backend set of fuzz_lbd.h. Bit 3: --standalone. Bits 4-5: the client's
 * rights (0 change state, 1 read only, 2 and 3 none), whatever its real credentials. */
#include "../../common/ipc.c"
#include "../../lbd/ctl.c"

#include "fuzz_lbd.h"

#define FUZZ_WRITE 65536

static struct ipc_server srv;
static enum ipc_access fuzz_grant;

static enum ipc_access fuzz_access(void *arg, const struct ipc_cred *cred)
{
	return fuzz_grant;
}

int lbd_reload(struct lbd *l, char *err, size_t errlen)
{
	snprintf(err, errlen, "no reload in the fuzz target");
	return -1;
}

static void fuzz_setup(void)
{
	fuzz_quiet();
	fuzz_lbd_setup();
	srv.loop = L.loop;
	srv.fd = -1;
	snprintf(srv.path, sizeof(srv.path), "fuzz");
	srv.access = fuzz_access;
	srv.handler = ctl_handle;
	srv.partial_ms = IPC_PARTIAL_MS;
	srv.idle_ms = IPC_IDLE_MS;
	srv.arg = &L;
	L.ctl = &srv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	static uint8_t sink[FUZZ_WRITE];
	struct fuzz_in in = { data, size };
	const struct fuzz_lbd_state *st;
	struct ipc_conn *c;
	uint8_t mode, *stream;
	size_t slen = 0, off = 0;
	int sv[2], shut = 0;

	if (!ready) {
		fuzz_setup();
		ready = 1;
	}
	mode = fuzz_u8(&in);
	st = fuzz_lbd_begin(mode >> 2);
	L.active = L.owner = (mode >> 1) & 1;
	L.standalone = (mode >> 3) & 1;
	fuzz_grant = (mode >> 4) & 3 ? ((mode >> 4) & 3) == 1 ? IPC_ACCESS_READ : IPC_ACCESS_NONE : IPC_ACCESS_CHANGE;
	stream = malloc(size + 2 * (size / 2 + 1));
	if (!stream || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	while (in.n) {
		const uint8_t *chunk;
		size_t len = fuzz_chunk(&in, IPC_MAX_REQ, &chunk);
		if (!(mode & 1)) {
			ipc_put_len(stream + slen, (uint32_t)len);
			slen += 4;
		}
		memcpy(stream + slen, chunk, len);
		slen += len;
	}
	/* The server side of a new client, as ipc_accept_cb sets it up. */
	c = ipc_conn_add(&srv, sv[0]);
	if (!c)
		abort();
	/* Feed, answer and read back until the server has dropped the client or everything is said. */
	for (int rounds = 0; srv.conns[0] && rounds < 4096; rounds++) {
		ssize_t n = 0;
		if (off < slen) {
			n = write(sv[1], stream + off, slen - off < FUZZ_WRITE ? slen - off : FUZZ_WRITE);
			if (n > 0)
				off += (size_t)n;
		} else if (!shut) {
			/* All said: the client hangs up, possibly mid-message. */
			shutdown(sv[1], SHUT_WR);
			shut = 1;
		}
		if (ev_is_active(&c->wio))
			ipc_conn_write_cb(srv.loop, &c->wio, EV_WRITE);
		else
			ipc_conn_read_cb(srv.loop, &c->rio, EV_READ);
		while (read(sv[1], sink, sizeof(sink)) > 0)
			;
	}
	if (srv.conns[0])
		ipc_conn_close(c);
	close(sv[1]);
	free(stream);
	/* mode_set may have armed the fence, release and gratuitous ARP timers: nothing runs them here. */
	ev_timer_stop(L.loop, &L.fence_timer);
	ev_timer_stop(L.loop, &L.garp_timer);
	ev_timer_stop(L.loop, &L.garp_refresh_timer);
	ev_timer_stop(L.loop, &L.release_timer);
	ev_timer_stop(L.loop, &L.stop_timer);
	L.fence_deadline_ms = L.release_until_ms = 0;
	fuzz_lbd_end(st);
	return 0;
}
