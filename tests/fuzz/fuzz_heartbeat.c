/* Fuzz target: heartbeats as vrrpd receives them from its peer's address (vrrpd/advert.c advert_input):
 * the authenticated envelope (common/auth.c auth_open: protobuf Envelope, canonical form, key id, kind,
 * sender, MAC, replay window and epoch handshake), the Heartbeat message, and what an authentic one
 * changes (advert_accept: the peer's view, then the election state machine). Then vrrpd's control
 * socket is asked for its status (vrrpd/status.c status_handle), which shows what the peer sent, and the
 * answer is rendered as `lbctl status --json` does (common/pbjson.c).
 *
 * advert.c and status.c are included so their static paths are reachable without a socket; the daemon's
 * glue (vrrpd/node.c vrrpd_actions) is replaced by a stand-in that only sends (to no socket).
 *
 * Each input starts with fresh sessions on both sides that have completed the epoch handshake. Input:
 * one byte of mode, then chunks (2-byte length, bytes). Mode bit 0 clear: each chunk is a Heartbeat
 * payload the peer seals, as a member holding the key would (bit 1: deliver each sealed datagram twice,
 * a replay). Bit 0 set: each chunk is a datagram delivered as it is, as from a host without the key.
 * Bit 2 clear: the cluster of fuzz.h (IPv4 nodes); set: the same nodes with IPv6 addresses, and VIPs of
 * both families (fuzz_cfg6_text). */
#include "../../vrrpd/advert.c"
#include "../../vrrpd/status.c"

#include <stdlib.h>

#include "control.pb-c.h"
#include "fuzz.h"
#include "pbjson.h"

#define FUZZ_PAYLOAD_MAX (ADVERT_BUF + 64)     /* larger than a datagram vrrpd accepts */

static struct vrrpd V;
static struct cfg *cfg4, *cfg6;
static struct auth_keyring *kr;
static uint8_t sealed[FUZZ_PAYLOAD_MAX + AUTH_OVERHEAD];

/* fuzz.h's nodes lb1 and lb2 with IPv6 addresses (heartbeats over IPv6), and VIPs of both families;
 * the key is the one fuzz_cfg() wrote. */
static const char fuzz_cfg6_text[] =
	"[cluster]\n"
	"interface = lo\n"
	"key_file = %s/cluster.key\n"
	"advert_interval = 100ms\n"
	"\n"
	"[node lb1]\n"
	"address = 2001:db8::11\n"
	"priority = 150\n"
	"\n"
	"[node lb2]\n"
	"address = 2001:db8::12\n"
	"priority = 100\n"
	"\n"
	"[service web6]\n"
	"vip = 2001:db8::100\n"
	"port = 80\n"
	"protocol = tcp\n"
	"backend = 2001:db8::21\n"
	"\n"
	"[service web]\n"
	"vip = 192.0.2.100\n"
	"port = 80\n"
	"protocol = tcp\n"
	"backend = 192.0.2.21\n";

void vrrpd_actions(struct vrrpd *v, unsigned act)
{
	if (act & VRRP_ACT_SEND_ADVERT)
		advert_send(v);
}

void vrrpd_rearm(struct vrrpd *v)
{
}

int vrrpd_reload(struct vrrpd *v, char *err, size_t errlen)
{
	snprintf(err, errlen, "no reload in the fuzz target");
	return -1;
}

static void fuzz_setup(void)
{
	char text[sizeof(fuzz_cfg6_text) + 256], err[512];

	fuzz_quiet();
	cfg4 = fuzz_cfg();
	snprintf(text, sizeof(text), fuzz_cfg6_text, fuzz_tmpdir());
	cfg6 = cfg_load(fuzz_write_file("dsrlb6.conf", text, strlen(text)), err, sizeof(err));
	kr = auth_keyring_from_bytes(&fuzz_key, 1);
	if (!cfg6 || !kr) {
		dprintf(2, "fuzz_heartbeat: harness: %s\n", cfg6 ? "keyring" : err);
		abort();
	}
	V.have_peer = 1;
	V.sock = -1;
	V.lbd_healthy = 1;
	snprintf(V.sync_state, sizeof(V.sync_state), "done");
}

/* vrrpd as node lb1 of cfg, its peer lb2. */
static void fuzz_node(struct cfg *cfg)
{
	const struct cfg_node *self, *peer;
	char err[256];

	V.cfg = cfg;
	self = cfg_find_node(cfg, "lb1", err, sizeof(err));
	peer = self ? cfg_peer(cfg, self) : NULL;
	if (!peer)
		abort();
	snprintf(V.node, sizeof(V.node), "%s", self->name);
	V.self = *self;
	V.peer = *peer;
}

/* A fuzz-time failure of the harness itself, not a finding in the code under test. */
static void fuzz_check(int ok, const char *what)
{
	if (!ok) {
		dprintf(2, "fuzz_heartbeat: harness: %s\n", what);
		abort();
	}
}

/* vrrpd's status as lbctl gets it, rendered as JSON: no raw control character but the layout's newlines. */
static void fuzz_status(void)
{
	static const uint8_t req[] = { 0x08, DSRLB__VRRP_CMD__VRRP_CMD_STATUS };
	static const struct ipc_peer root = { 0, 0, 1, IPC_ACCESS_CHANGE };
	Dsrlb__VrrpResponse *r;
	uint8_t *resp = NULL;
	size_t rlen = 0, jlen = 0;
	char *json = NULL;
	FILE *out;

	fuzz_check(status_handle(&V, &root, req, sizeof(req), &resp, &rlen) == 0 && resp, "status");
	r = dsrlb__vrrp_response__unpack(NULL, rlen, resp);
	fuzz_check(r != NULL, "status response does not unpack");
	out = open_memstream(&json, &jlen);
	fuzz_check(out != NULL, "memstream");
	pbjson_write(out, &r->base, 0);
	fclose(out);
	for (size_t i = 0; i < jlen; i++)
		if ((unsigned char)json[i] < 0x20 && json[i] != '\n')
			abort();
	free(json);
	dsrlb__vrrp_response__free_unpacked(r, NULL);
	free(resp);
}

/* Both sessions fresh, and each has accepted the other's epoch (auth.c's handshake diagram). */
static struct auth_session *fuzz_handshake(void)
{
	struct auth_session *peer = auth_session_create(kr, AUTH_KIND_HEARTBEAT, "lb2", "lb1");
	uint8_t env[256], plain[64];
	size_t elen, plen;

	V.hb = auth_session_create(kr, AUTH_KIND_HEARTBEAT, "lb1", "lb2");
	fuzz_check(peer && V.hb, "sessions");
	fuzz_check(auth_seal(peer, (const uint8_t *)"", 0, env, sizeof(env), &elen) == 0, "seal 1");
	fuzz_check(auth_open(V.hb, env, elen, plain, sizeof(plain), &plen) == AUTH_STALE_EPOCH, "open 1");
	fuzz_check(auth_seal(V.hb, (const uint8_t *)"", 0, env, sizeof(env), &elen) == 0, "seal 2");
	fuzz_check(auth_open(peer, env, elen, plain, sizeof(plain), &plen) == AUTH_OK, "open 2");
	return peer;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct fuzz_in in = { data, size };
	struct vrrp_fsm_config fc = { 0 };
	struct auth_session *peer;
	char from[IPADDR_STRLEN];
	uint8_t mode = size ? data[0] : 0;

	if (!ready) {
		fuzz_setup();
		ready = 1;
	}
	fuzz_node(mode & 4 ? cfg6 : cfg4);
	ipaddr_str(&V.peer.addr, from);
	memset(&V.peer_info, 0, sizeof(V.peer_info));
	memset(&V.rej, 0, sizeof(V.rej));
	V.prompt_sent_ms = 0;
	fc.priority = V.self.priority;
	fc.addr = V.self.addr;
	fc.advert_ms = V.cfg->advert_interval_ms;
	fc.preempt = 1;
	fuzz_check(vrrp_fsm_init(&V.fsm, &fc) == 0, "fsm");
	vrrpd_actions(&V, vrrp_fsm_startup(&V.fsm, clock_ms()));
	peer = fuzz_handshake();

	fuzz_u8(&in);   /* the mode, read above */
	while (in.n) {
		const uint8_t *chunk;
		size_t len = fuzz_chunk(&in, FUZZ_PAYLOAD_MAX, &chunk), slen;

		if (mode & 1) {
			/* Exactly len bytes, so a read past the datagram is caught. */
			uint8_t *dgram = malloc(len ? len : 1);
			if (!dgram)
				break;
			memcpy(dgram, chunk, len);
			vrrpd_actions(&V, advert_input(&V, dgram, len, from));
			free(dgram);
			continue;
		}
		if (auth_seal(peer, chunk, len, sealed, sizeof(sealed), &slen) < 0)
			continue;
		vrrpd_actions(&V, advert_input(&V, sealed, slen, from));
		if (mode & 2)
			vrrpd_actions(&V, advert_input(&V, sealed, slen, from));
	}
	fuzz_status();
	auth_session_destroy(peer);
	auth_session_destroy(V.hb);
	V.hb = NULL;
	return 0;
}
