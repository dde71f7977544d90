/* Unit tests for the pure rules of connection-state sync (lbd/sync.c): the output budget per peer, when
 * a node counts as synced (sync_ready) and the one state word of a mesh; and the flow codec of
 * lbd/sync_table.c: IPv4 flows exactly as before IPv6 on the wire, IPv6 flows in the bytes fields, every
 * hostile variant refused, and the size bounds that keep a message within AUTH_MAX_MSG. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lbd/sync_peer.h"

/* A pair keeps the 8 MiB it always had; a mesh shares 16 MiB, never below 1 MiB a peer. */
static void test_out_cap(void **state)
{
	assert_int_equal(sync_out_cap(1), 8u << 20);
	assert_int_equal(sync_out_cap(2), 8u << 20);
	assert_int_equal(sync_out_cap(4), 4u << 20);
	assert_int_equal(sync_out_cap(15), (16u << 20) / 15);
	assert_true(sync_out_cap(15) * 15 <= 16u << 20);
	assert_int_equal(sync_out_cap(64), 1u << 20);
	assert_int_equal(sync_out_cap(0), 8u << 20);
}

/* A pair: ready exactly when the one bulk is done, or after the timeout (what vrrpd's preemption
 * has always waited for). */
static void test_ready_pair(void **state)
{
	enum sync_bulk b[1];
	int est[1] = { 1 };

	for (int e = 0; e < 2; e++) {
		est[0] = e;
		b[0] = BULK_NONE;
		assert_false(sync_ready_rule(b, est, 1, 0));
		b[0] = BULK_REQUESTED;
		assert_false(sync_ready_rule(b, est, 1, 0));
		b[0] = BULK_RECEIVING;
		assert_false(sync_ready_rule(b, est, 1, 0));
		assert_true(sync_ready_rule(b, est, 1, 1));
		b[0] = BULK_DONE;
		assert_true(sync_ready_rule(b, est, 1, 0));
	}
	assert_true(sync_ready_rule(NULL, NULL, 0, 0));
}

/* A mesh: one done transfer is enough while the other peers are away, but a peer that is connected
 * and still sending its table holds readiness back. */
static void test_ready_mesh(void **state)
{
	enum sync_bulk b[3] = { BULK_DONE, BULK_NONE, BULK_REQUESTED };
	int est[3] = { 1, 0, 0 };

	assert_true(sync_ready_rule(b, est, 3, 0));     /* the others are not connected */
	est[2] = 1;
	assert_false(sync_ready_rule(b, est, 3, 0));    /* lb3 is connected, its bulk under way */
	b[2] = BULK_RECEIVING;
	assert_false(sync_ready_rule(b, est, 3, 0));
	assert_true(sync_ready_rule(b, est, 3, 1));     /* sync_timeout passed */
	b[2] = BULK_DONE;
	assert_true(sync_ready_rule(b, est, 3, 0));
	b[0] = b[2] = BULK_NONE;
	assert_false(sync_ready_rule(b, est, 3, 0));    /* nobody has sent us anything yet */
}

static void test_state_aggregate(void **state)
{
	const char *one[] = { "handshake" };
	const char *all[] = { "established", "established", "established" };
	const char *some[] = { "established", "connecting", "handshake" };
	const char *none[] = { "connecting", "handshake" };
	const char *down[] = { "connecting", "connecting" };

	assert_string_equal(sync_state_aggregate(one, 1), "handshake");
	assert_string_equal(sync_state_aggregate(all, 3), "established");
	assert_string_equal(sync_state_aggregate(some, 3), "partial");
	assert_string_equal(sync_state_aggregate(none, 2), "handshake");
	assert_string_equal(sync_state_aggregate(down, 2), "connecting");
	assert_string_equal(sync_state_aggregate(all, 0), "disabled");
}

static struct ipaddr addr(const char *s)
{
	struct ipaddr a;

	assert_int_equal(ipaddr_parse(s, &a), 0);
	return a;
}

static struct sync_flow_rec rec(const char *saddr, const char *daddr, const char *backend)
{
	struct sync_flow_rec r;

	memset(&r, 0, sizeof(r));
	r.key.saddr = addr(saddr);
	r.key.daddr = addr(daddr);
	r.key.sport = htons(40000);
	r.key.dport = htons(443);
	r.key.proto = 6;
	if (backend)
		r.backend = addr(backend);
	r.state = 1;
	r.idle_ms = 1000;
	return r;
}

/* fill -> pack -> unpack -> decode gives back what went in. */
static void roundtrip(const struct sync_flow_rec *in, struct sync_flow_rec *out)
{
	struct sync_flow_buf fb;
	uint8_t buf[256];
	Dsrlb__SyncFlow *sf;
	size_t len;

	assert_int_equal(sync_table_fill(&fb, in), 0);
	len = dsrlb__sync_flow__get_packed_size(&fb.sf);
	assert_true(len <= sizeof(buf));
	dsrlb__sync_flow__pack(&fb.sf, buf);
	sf = dsrlb__sync_flow__unpack(NULL, len, buf);
	assert_non_null(sf);
	assert_null(sync_table_decode(sf, out));
	dsrlb__sync_flow__free_unpacked(sf, NULL);
}

static void assert_rec_equal(const struct sync_flow_rec *a, const struct sync_flow_rec *b)
{
	assert_true(ipaddr_eq(&a->key.saddr, &b->key.saddr));
	assert_true(ipaddr_eq(&a->key.daddr, &b->key.daddr));
	assert_int_equal(a->key.sport, b->key.sport);
	assert_int_equal(a->key.dport, b->key.dport);
	assert_int_equal(a->key.proto, b->key.proto);
	assert_true(ipaddr_eq(&a->backend, &b->backend));
	assert_int_equal(a->idle_ms, b->idle_ms);
	assert_int_equal(a->state, b->state);
	assert_int_equal(a->deleted, b->deleted);
}

/* An IPv6 flow travels in the bytes fields only, 16 bytes each, and comes back whole; a deletion with no
 * backend (::) too. */
static void test_flow_v6_roundtrip(void **state)
{
	struct sync_flow_rec in = rec("2001:db8:1::7", "2001:db8::100", "2001:db8::22"), out;
	struct sync_flow_buf fb;

	assert_int_equal(sync_table_fill(&fb, &in), 0);
	assert_int_equal(fb.sf.saddr, 0);
	assert_int_equal(fb.sf.daddr, 0);
	assert_int_equal(fb.sf.backend, 0);
	assert_int_equal(fb.sf.saddr6.len, 16);
	assert_int_equal(fb.sf.daddr6.len, 16);
	assert_int_equal(fb.sf.backend6.len, 16);
	assert_memory_equal(fb.sf.daddr6.data, in.key.daddr.b, 16);
	roundtrip(&in, &out);
	assert_rec_equal(&in, &out);
	assert_false(ipaddr_is_v4(&out.key.saddr));

	in = rec("2001:db8:1::8", "2001:db8::100", NULL);
	in.deleted = 1;
	in.state = FLOW_STATE_LAST;
	in.idle_ms = UINT32_MAX;
	roundtrip(&in, &out);
	assert_rec_equal(&in, &out);
	assert_true(ipaddr_is_none(&out.backend));
}

/* An IPv4 flow is encoded byte for byte as before IPv6 (fields 1-9 only), and the bytes an old peer sends
 * decode to the same flow. */
static void test_flow_v4_unchanged(void **state)
{
	static const uint8_t old[] = {
		0x0d, 198, 51, 100, 7,          /* saddr, fixed32 */
		0x15, 192, 0, 2, 100,           /* daddr */
		0x18, 0xc0, 0xb8, 0x02,         /* sport 40000 */
		0x20, 0xbb, 0x03,               /* dport 443 */
		0x28, 0x06,                     /* proto */
		0x35, 192, 0, 2, 22,            /* backend */
		0x38, 0x01,                     /* state */
		0x40, 0xe8, 0x07,               /* idle_ms 1000 */
	};
	struct sync_flow_rec in = rec("198.51.100.7", "192.0.2.100", "192.0.2.22"), out;
	struct sync_flow_buf fb;
	uint8_t buf[256];
	Dsrlb__SyncFlow *sf;

	assert_int_equal(sync_table_fill(&fb, &in), 0);
	assert_int_equal(fb.sf.saddr6.len + fb.sf.daddr6.len + fb.sf.backend6.len, 0);
	assert_int_equal(dsrlb__sync_flow__get_packed_size(&fb.sf), sizeof(old));
	dsrlb__sync_flow__pack(&fb.sf, buf);
	assert_memory_equal(buf, old, sizeof(old));

	sf = dsrlb__sync_flow__unpack(NULL, sizeof(old), old);
	assert_non_null(sf);
	assert_null(sync_table_decode(sf, &out));
	dsrlb__sync_flow__free_unpacked(sf, NULL);
	assert_rec_equal(&in, &out);
	assert_true(ipaddr_is_v4(&out.key.saddr));
	assert_int_equal(ipaddr_v4(&out.backend), addr("192.0.2.22").w[3]);

	/* A deletion naming no backend: backend 0, none on arrival. */
	in = rec("198.51.100.7", "192.0.2.100", NULL);
	in.deleted = 1;
	roundtrip(&in, &out);
	assert_rec_equal(&in, &out);
	assert_true(ipaddr_is_none(&out.backend));
}

/* Nothing may send a flow whose backend is of the other family than its key. */
static void test_flow_fill_mixed(void **state)
{
	struct sync_flow_rec r = rec("2001:db8:1::7", "2001:db8::100", "192.0.2.22");
	struct sync_flow_buf fb;

	assert_int_equal(sync_table_fill(&fb, &r), -1);
	r = rec("198.51.100.7", "192.0.2.100", "2001:db8::22");
	assert_int_equal(sync_table_fill(&fb, &r), -1);
	r = rec("198.51.100.7", "2001:db8::100", "2001:db8::22");
	assert_int_equal(sync_table_fill(&fb, &r), -1);
}

/* A valid IPv6 SyncFlow to spoil, its bytes fields pointing into a. */
static Dsrlb__SyncFlow v6_flow(uint8_t a[3][16])
{
	Dsrlb__SyncFlow sf = DSRLB__SYNC_FLOW__INIT;
	struct ipaddr s = addr("2001:db8:1::7"), d = addr("2001:db8::100"), b = addr("2001:db8::22");

	memcpy(a[0], s.b, 16);
	memcpy(a[1], d.b, 16);
	memcpy(a[2], b.b, 16);
	sf.saddr6 = (ProtobufCBinaryData){ 16, a[0] };
	sf.daddr6 = (ProtobufCBinaryData){ 16, a[1] };
	sf.backend6 = (ProtobufCBinaryData){ 16, a[2] };
	sf.sport = 40000;
	sf.dport = 443;
	sf.proto = 6;
	return sf;
}

/* Refused, each with a reason: a bytes field of any length but 16, the families mixed either way, an
 * IPv4-mapped address in any *6 field, numbers out of range. Also after a pack/unpack, as they arrive. */
static void test_flow_hostile(void **state)
{
	static uint8_t big[40];
	uint8_t a[3][16];
	struct sync_flow_rec r;
	Dsrlb__SyncFlow sf = v6_flow(a), bad;
	ProtobufCBinaryData *f6[3] = { &bad.saddr6, &bad.daddr6, &bad.backend6 };

	assert_null(sync_table_decode(&sf, &r));
	for (int f = 0; f < 3; f++) {
		for (size_t len = 0; len <= sizeof(big); len++) {
			if (len == 16)
				continue;
			bad = sf;
			*f6[f] = (ProtobufCBinaryData){ len, len ? big : NULL };
			assert_non_null(sync_table_decode(&bad, &r));
		}
		/* ::ffff:192.0.2.1 */
		bad = sf;
		memcpy(big, addr("::ffff:192.0.2.1").b, 16);
		*f6[f] = (ProtobufCBinaryData){ 16, big };
		assert_non_null(sync_table_decode(&bad, &r));
	}
	/* IPv6 flow with an IPv4 address field set. */
	bad = sf;
	bad.saddr = htonl(0xc6336407);
	assert_non_null(sync_table_decode(&bad, &r));
	bad = sf;
	bad.daddr = htonl(0xc0000264);
	assert_non_null(sync_table_decode(&bad, &r));
	bad = sf;
	bad.backend = htonl(0xc0000216);
	assert_non_null(sync_table_decode(&bad, &r));
	/* IPv4 flow (no saddr6) with an IPv6 field. */
	bad = sf;
	bad.saddr6 = (ProtobufCBinaryData){ 0, NULL };
	bad.saddr = htonl(0xc6336407);
	bad.daddr = htonl(0xc0000264);
	assert_non_null(sync_table_decode(&bad, &r));   /* daddr6 and backend6 */
	bad.daddr6 = (ProtobufCBinaryData){ 0, NULL };
	assert_non_null(sync_table_decode(&bad, &r));   /* backend6 */
	bad.backend6 = (ProtobufCBinaryData){ 0, NULL };
	assert_null(sync_table_decode(&bad, &r));       /* now a plain IPv4 flow */
	/* Numbers out of range, either family. */
	bad = sf;
	bad.sport = 65536;
	assert_non_null(sync_table_decode(&bad, &r));
	bad = sf;
	bad.proto = 256;
	assert_non_null(sync_table_decode(&bad, &r));
	bad = sf;
	bad.state = FLOW_STATE_LAST + 1;
	assert_non_null(sync_table_decode(&bad, &r));

	/* As received: a 15-byte saddr6 survives protobuf-c and is refused by the decoder. */
	{
		uint8_t buf[256];
		Dsrlb__SyncFlow *u;
		size_t len;

		bad = sf;
		bad.saddr6.len = 15;
		len = dsrlb__sync_flow__get_packed_size(&bad);
		dsrlb__sync_flow__pack(&bad, buf);
		u = dsrlb__sync_flow__unpack(NULL, len, buf);
		assert_non_null(u);
		assert_non_null(sync_table_decode(u, &r));
		dsrlb__sync_flow__free_unpacked(u, NULL);
	}
}

/* A flow with every field at its longest encoding. */
static struct sync_flow_rec rec_worst(int v6)
{
	struct sync_flow_rec r;

	memset(&r, 0xff, sizeof(r));
	if (!v6) {
		r.key.saddr = ipaddr_from_v4(0xffffffffu);
		r.key.daddr = ipaddr_from_v4(0xffffffffu);
		r.backend = ipaddr_from_v4(0xffffffffu);
	}
	r.state = FLOW_STATE_LAST;
	r.deleted = 1;
	return r;
}

/* SYNC_FLOW_WIRE_V4/_V6 are the largest encodings (with the 2-byte tag and length of the repeated
 * field), and a message that sync_table_add calls full packs within AUTH_MAX_MSG with its own fields at
 * their longest: 1200 IPv4 flows, 843 IPv6 ones. */
static void test_flow_wire_bounds(void **state)
{
	struct sync_shared *sh = calloc(1, sizeof(*sh));
	static const size_t expect_n[2] = { SYNC_BATCH, 843 };

	assert_non_null(sh);
	for (int v6 = 0; v6 < 2; v6++) {
		struct sync_flow_rec r = rec_worst(v6);
		struct sync_batch b = { 0, 0 };
		struct sync_flow_buf fb;
		Dsrlb__SyncMessage m = DSRLB__SYNC_MESSAGE__INIT;
		size_t wire = v6 ? SYNC_FLOW_WIRE_V6 : SYNC_FLOW_WIRE_V4;
		int added;

		assert_int_equal(sync_table_fill(&fb, &r), 0);
		assert_int_equal(dsrlb__sync_flow__get_packed_size(&fb.sf) + 2, wire);
		assert_int_equal(sync_table_wire_max(&r.key), wire);
		while ((added = sync_table_add(sh, &b, &r)) == 1)
			;
		assert_int_equal(added, 0);
		assert_int_equal(b.n, expect_n[v6]);
		m.type = DSRLB__SYNC_TYPE__SYNC_BULK_CHUNK;
		m.peer_accepted = m.done = m.active = 1;
		m.cursor = UINT32_MAX;
		m.sent_ms = m.total = UINT64_MAX;
		m.flows = sh->msg_ptrs;
		m.n_flows = b.n;
		assert_true(dsrlb__sync_message__get_packed_size(&m) <= AUTH_MAX_MSG);
		m.n_flows = 0;
		assert_true(dsrlb__sync_message__get_packed_size(&m) <= SYNC_MSG_HEAD_MAX);
	}
	/* A flow that cannot be encoded is skipped, not added. */
	{
		struct sync_flow_rec r = rec("2001:db8:1::7", "2001:db8::100", "192.0.2.22");
		struct sync_batch b = { 0, 0 };

		assert_int_equal(sync_table_add(sh, &b, &r), -1);
		assert_int_equal(b.n, 0);
	}
	free(sh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out_cap),
		cmocka_unit_test(test_ready_pair),
		cmocka_unit_test(test_ready_mesh),
		cmocka_unit_test(test_state_aggregate),
		cmocka_unit_test(test_flow_v6_roundtrip),
		cmocka_unit_test(test_flow_v4_unchanged),
		cmocka_unit_test(test_flow_fill_mixed),
		cmocka_unit_test(test_flow_hostile),
		cmocka_unit_test(test_flow_wire_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
