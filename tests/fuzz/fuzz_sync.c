/* Fuzz target: connection sync as lbd receives it from its peer (lbd/sync_peer.c sync_peer_read_cb): the stream
 * framing (4-byte length, the oversized-frame limit), the envelope (common/auth.c, kind SYNC) and the
 * handshake, SyncMessage decoding, and what an authentic message does: HELLO answers, flows of either
 * family decoded (sync_table_decode refuses bad address fields) and installed in or deleted from the
 * connection table (sync_table_apply; an IPv6 flow for an IPv4-only table is dropped and counted), bulk
 * requests answered from the table, chunks, acks, NODE_STATE.
 *
 * sync.c and sync_peer.c are included so the mesh, its peer and the static input path are reachable: the
 * context comes from sync_create (the cluster of fuzz.h, node lb1, which connects rather than listens, so nothing is opened),
 * and each input gets a fresh session and one end of a Unix socketpair as its connection, whose other end
 * the harness writes. Nothing touches the network.
 *
 * Input: one byte of mode, then chunks (2-byte length, bytes). Mode bit 0 clear: each chunk is a
 * SyncMessage the peer seals and frames, as a member holding the key would, after learning our challenge
 * from our first HELLO. Bit 0 set: the chunks are raw stream bytes, as from a host without the key. Bit 1:
 * lbd is active. Bit 2: the degraded backend set of fuzz_lbd.h. */
#include "../../lbd/sync.c"
#include "../../lbd/sync_peer.c"

#include <fcntl.h>

#include "fuzz_lbd.h"

#define FUZZ_WRITE 32768

static struct sync_ctx *S;
static struct sync_peer *P;           /* lb2, the one peer */

static void fuzz_setup(void)
{
	fuzz_quiet();
	fuzz_lbd_setup();
	S = sync_create(&L);
	if (!S || S->n_peers != 1 || !S->peers[0]->initiator || S->listen_fd >= 0)
		abort();
	P = S->peers[0];
	L.sync = S;
}

/* Appends what the peer sends for one chunk to the stream. */
static size_t fuzz_frame(struct auth_session *peer, int raw, const uint8_t *chunk, size_t len, uint8_t *out)
{
	size_t elen;

	if (raw) {
		memcpy(out, chunk, len);
		return len;
	}
	if (auth_seal(peer, chunk, len, out + 4, AUTH_MAX_ENVELOPE, &elen) < 0)
		return 0;
	sync_put_len(out, (uint32_t)elen);
	return 4 + elen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct fuzz_in in = { data, size };
	const struct fuzz_lbd_state *st;
	struct auth_session *peer;
	uint8_t mode, *stream;
	size_t slen = 0, off = 0, plen;
	int sv[2];

	if (!ready) {
		fuzz_setup();
		ready = 1;
	}
	mode = fuzz_u8(&in);
	st = fuzz_lbd_begin(mode >> 2);
	L.active = (mode >> 1) & 1;
	/* Each chunk costs at least its 2-byte length and adds at most an envelope's overhead and a prefix. */
	stream = malloc(size + (size / 2 + 1) * (AUTH_OVERHEAD + 4) + AUTH_MAX_ENVELOPE);
	if (!stream || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();

	auth_session_destroy(P->sess);
	P->sess = auth_session_create(S->sh.keys, AUTH_KIND_SYNC, "lb1", "lb2");
	peer = auth_session_create(S->sh.keys, AUTH_KIND_SYNC, "lb2", "lb1");
	if (!P->sess || !peer)
		abort();
	P->bulk = BULK_NONE;
	P->bulk_tx = 0;
	P->bulk_tx_cursor = 0;
	P->n_lags = 0;
	P->remote_at_ms = 0;
	sync_peer_setup_fd(P, sv[0]);
	sync_peer_connected(P, 1);
	/* Our HELLO is the peer's first message from us: it learns our challenge (and cannot trust us yet). */
	if (P->out_len < 4 || auth_open(peer, P->out + 4, P->out_len - 4, S->sh.plain, AUTH_MAX_MSG, &plen) !=
	    AUTH_STALE_EPOCH)
		abort();
	P->out_len = P->out_off = 0;

	while (in.n) {
		const uint8_t *chunk;
		size_t len = fuzz_chunk(&in, AUTH_MAX_MSG, &chunk);
		slen += fuzz_frame(peer, mode & 1, chunk, len, stream + slen);
	}
	while (P->fd >= 0) {
		ssize_t n = 0;
		if (off < slen) {
			n = write(sv[1], stream + off, slen - off < FUZZ_WRITE ? slen - off : FUZZ_WRITE);
			if (n > 0)
				off += (size_t)n;
		}
		sync_peer_read_cb(L.loop, &P->rio, EV_READ);
		/* What lbd queued for the peer is taken as sent. */
		P->out_len = P->out_off = 0;
		if (off == slen && n <= 0)
			break;
	}
	sync_peer_close(P, "end of input");
	ev_timer_stop(L.loop, &P->retry);
	ev_timer_stop(L.loop, &S->flush);
	close(sv[1]);
	auth_session_destroy(peer);
	free(stream);
	fuzz_lbd_end(st);
	return 0;
}
