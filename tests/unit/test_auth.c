/* Unit tests for common/auth: handshake and convergence, replay window, restarts, tampering of every
 * field and bit, truncation, garbage, size limits, key rotation, subkey separation and key files. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth.h"
#include "heartbeat.pb-c.h"

#define MSG_CAP 1024

struct msg {
	uint8_t b[MSG_CAP];
	size_t len;
};

static uint8_t key1[AUTH_KEY_LEN], key2[AUTH_KEY_LEN], key3[AUTH_KEY_LEN];

static struct auth_keyring *ring(const uint8_t *first, const uint8_t *second)
{
	uint8_t keys[2][AUTH_KEY_LEN];
	struct auth_keyring *kr;

	memcpy(keys[0], first, AUTH_KEY_LEN);
	if (second != NULL)
		memcpy(keys[1], second, AUTH_KEY_LEN);
	kr = auth_keyring_from_bytes((const uint8_t (*)[AUTH_KEY_LEN])keys, second != NULL ? 2 : 1);
	assert_non_null(kr);
	return kr;
}

static struct msg seal(struct auth_session *s, const char *text)
{
	struct msg m;

	assert_int_equal(auth_seal(s, (const uint8_t *)text, strlen(text), m.b, sizeof(m.b), &m.len), 0);
	assert_true(m.len > 0 && m.len <= sizeof(m.b));
	return m;
}

static enum auth_result open_msg(struct auth_session *s, const struct msg *m)
{
	uint8_t out[MSG_CAP];
	size_t out_len = 12345;
	enum auth_result r;

	r = auth_open(s, m->b, m->len, out, sizeof(out), &out_len);
	if (r != AUTH_OK)
		assert_int_equal(out_len, 0);
	return r;
}

/* Opens and checks the payload survived. */
static void open_ok(struct auth_session *s, const struct msg *m, const char *text)
{
	uint8_t out[MSG_CAP];
	size_t out_len = 0;

	assert_int_equal(auth_open(s, m->b, m->len, out, sizeof(out), &out_len), AUTH_OK);
	assert_int_equal(out_len, strlen(text));
	assert_memory_equal(out, text, out_len);
}

/* Exchanges messages both ways until each side accepts the other's epoch and the latest message of
 * each direction opened OK; fails the test if that takes more than a few rounds. Returns the number of
 * messages that were rejected on the way. */
static int handshake(struct auth_session *a, struct auth_session *b)
{
	int rounds, rejected = 0;

	for (rounds = 0; rounds < 4; rounds++) {
		struct msg ab = seal(a, "hello from a");
		enum auth_result rab = open_msg(b, &ab), rba;
		struct msg ba;

		assert_true(rab == AUTH_OK || rab == AUTH_STALE_EPOCH);
		rejected += rab != AUTH_OK;
		ba = seal(b, "hello from b");
		rba = open_msg(a, &ba);
		assert_true(rba == AUTH_OK || rba == AUTH_STALE_EPOCH);
		rejected += rba != AUTH_OK;
		if (rab == AUTH_OK && rba == AUTH_OK) {
			assert_true(auth_session_peer_epoch(a) == auth_session_epoch(b));
			assert_true(auth_session_peer_epoch(b) == auth_session_epoch(a));
			return rejected;
		}
	}
	fail_msg("no convergence after %d rounds", rounds);
	return -1;
}

struct pair {
	struct auth_keyring *kr;
	struct auth_session *a, *b;
};

static void pair_init(struct pair *p, enum auth_kind kind)
{
	p->kr = ring(key1, NULL);
	p->a = auth_session_create(p->kr, kind, "lb-a", "lb-b");
	p->b = auth_session_create(p->kr, kind, "lb-b", "lb-a");
	assert_non_null(p->a);
	assert_non_null(p->b);
}

static void pair_up(struct pair *p)
{
	pair_init(p, AUTH_KIND_HEARTBEAT);
	handshake(p->a, p->b);
}

static void pair_free(struct pair *p)
{
	auth_session_destroy(p->a);
	auth_session_destroy(p->b);
	auth_keyring_destroy(p->kr);
}

/* Unpacks m, lets fn change the envelope, packs it back. */
static struct msg rewrite(const struct msg *m, void (*fn)(Dsrlb__Envelope *, void *), void *arg)
{
	Dsrlb__Envelope *env = dsrlb__envelope__unpack(NULL, m->len, m->b);
	struct msg out;

	assert_non_null(env);
	fn(env, arg);
	assert_true(dsrlb__envelope__get_packed_size(env) <= sizeof(out.b));
	out.len = dsrlb__envelope__pack(env, out.b);
	dsrlb__envelope__free_unpacked(env, NULL);
	return out;
}

static Dsrlb__Envelope *peek(const struct msg *m)
{
	Dsrlb__Envelope *env = dsrlb__envelope__unpack(NULL, m->len, m->b);

	assert_non_null(env);
	return env;
}

/* ---- handshake and convergence ---- */

static void test_handshake_fresh(void **state)
{
	struct pair p;
	struct msg m;

	pair_init(&p, AUTH_KIND_HEARTBEAT);
	assert_true(auth_session_epoch(p.a) != 0);
	assert_true(auth_session_epoch(p.a) != auth_session_epoch(p.b));
	assert_true(auth_session_peer_epoch(p.a) == 0);

	/* A's first message cannot echo B's challenge: not trusted, and B accepts no epoch. */
	m = seal(p.a, "a1");
	assert_int_equal(open_msg(p.b, &m), AUTH_STALE_EPOCH);
	assert_true(auth_session_peer_epoch(p.b) == 0);
	/* ... but B learned A's challenge, so B's reply is trusted at once. */
	m = seal(p.b, "b1");
	open_ok(p.a, &m, "b1");
	assert_true(auth_session_peer_epoch(p.a) == auth_session_epoch(p.b));
	m = seal(p.a, "a2");
	open_ok(p.b, &m, "a2");
	assert_true(auth_session_peer_epoch(p.b) == auth_session_epoch(p.a));
	m = seal(p.b, "b2");
	open_ok(p.a, &m, "b2");
	/* Converged: steady traffic both ways. */
	for (int i = 0; i < 200; i++) {
		m = seal(p.a, "tick");
		open_ok(p.b, &m, "tick");
		if (i % 3 == 0) {
			m = seal(p.b, "tock");
			open_ok(p.a, &m, "tock");
		}
	}
	pair_free(&p);
}

static void test_handshake_helper_both_orders(void **state)
{
	struct pair p;

	pair_init(&p, AUTH_KIND_SYNC);
	assert_int_equal(handshake(p.a, p.b), 1);
	pair_free(&p);
	pair_init(&p, AUTH_KIND_SYNC);
	assert_int_equal(handshake(p.b, p.a), 1);
	pair_free(&p);
}

/* Heartbeats from one side only never get that side accepted: the scheme needs both to send. */
static void test_one_way_never_trusted(void **state)
{
	struct pair p;
	struct msg m;

	pair_init(&p, AUTH_KIND_HEARTBEAT);
	for (int i = 0; i < 10; i++) {
		m = seal(p.a, "adv");
		assert_int_equal(open_msg(p.b, &m), AUTH_STALE_EPOCH);
	}
	assert_true(auth_session_peer_epoch(p.b) == 0);
	pair_free(&p);
}

static void test_empty_payload(void **state)
{
	struct pair p;
	uint8_t buf[MSG_CAP], out[8];
	size_t len = 0, out_len = 99;

	pair_up(&p);
	assert_int_equal(auth_seal(p.a, NULL, 0, buf, sizeof(buf), &len), 0);
	assert_int_equal(auth_open(p.b, buf, len, out, sizeof(out), &out_len), AUTH_OK);
	assert_int_equal(out_len, 0);
	pair_free(&p);
}

/* ---- replay window ---- */

static void test_duplicate(void **state)
{
	struct pair p;
	struct msg m, n;

	pair_up(&p);
	m = seal(p.a, "once");
	open_ok(p.b, &m, "once");
	assert_int_equal(open_msg(p.b, &m), AUTH_REPLAY);
	assert_int_equal(open_msg(p.b, &m), AUTH_REPLAY);
	n = seal(p.a, "next");
	open_ok(p.b, &n, "next");
	assert_int_equal(open_msg(p.b, &m), AUTH_REPLAY);
	assert_int_equal(open_msg(p.b, &n), AUTH_REPLAY);
	/* A's own message reflected back to A. */
	assert_int_equal(open_msg(p.a, &n), AUTH_UNKNOWN_NODE);
	pair_free(&p);
}

static void test_window(void **state)
{
	struct pair p;
	struct msg *m = calloc(70, sizeof(*m));
	int i;

	assert_non_null(m);
	pair_up(&p);
	/* Reverse order within the window: all accepted, each once. */
	for (i = 0; i < 10; i++)
		m[i] = seal(p.a, "r");
	for (i = 9; i >= 0; i--)
		assert_int_equal(open_msg(p.b, &m[i]), AUTH_OK);
	for (i = 0; i < 10; i++)
		assert_int_equal(open_msg(p.b, &m[i]), AUTH_REPLAY);

	/* m[69] is highest; m[5] is 64 behind (outside), m[6] 63 behind (inside). */
	for (i = 0; i < 70; i++)
		m[i] = seal(p.a, "w");
	assert_int_equal(open_msg(p.b, &m[69]), AUTH_OK);
	assert_int_equal(open_msg(p.b, &m[5]), AUTH_REPLAY);
	assert_int_equal(open_msg(p.b, &m[0]), AUTH_REPLAY);
	assert_int_equal(open_msg(p.b, &m[6]), AUTH_OK);
	assert_int_equal(open_msg(p.b, &m[6]), AUTH_REPLAY);
	assert_int_equal(open_msg(p.b, &m[68]), AUTH_OK);
	assert_int_equal(open_msg(p.b, &m[69]), AUTH_REPLAY);
	/* Accepting m[6] moved nothing: m[7] is still in the window. */
	assert_int_equal(open_msg(p.b, &m[7]), AUTH_OK);

	/* A jump far ahead clears the whole window. */
	for (i = 0; i < 70; i++)
		m[i] = seal(p.a, "j");
	assert_int_equal(open_msg(p.b, &m[69]), AUTH_OK);
	assert_int_equal(open_msg(p.b, &m[6]), AUTH_OK);
	assert_int_equal(open_msg(p.b, &m[5]), AUTH_REPLAY);
	pair_free(&p);
	free(m);
}

/* Messages of a new epoch sent before it was proven fresh are never accepted afterwards. */
static void test_pre_proof_messages_rejected(void **state)
{
	struct pair p;
	struct msg early, proof;

	pair_init(&p, AUTH_KIND_HEARTBEAT);
	early = seal(p.a, "early");
	assert_int_equal(open_msg(p.b, &early), AUTH_STALE_EPOCH);
	proof = seal(p.b, "b");
	open_ok(p.a, &proof, "b");
	proof = seal(p.a, "proof");
	open_ok(p.b, &proof, "proof");
	assert_int_equal(open_msg(p.b, &early), AUTH_REPLAY);
	pair_free(&p);
}

/* ---- restarts ---- */

static void test_replay_after_sender_restart(void **state)
{
	struct pair p;
	struct msg delivered, undelivered, first_new, m;
	uint64_t old_epoch, new_epoch;

	pair_up(&p);
	old_epoch = auth_session_epoch(p.a);
	delivered = seal(p.a, "old delivered");
	open_ok(p.b, &delivered, "old delivered");
	undelivered = seal(p.a, "old never delivered");

	/* A restarts: new session, new epoch. */
	auth_session_destroy(p.a);
	p.a = auth_session_create(p.kr, AUTH_KIND_HEARTBEAT, "lb-a", "lb-b");
	assert_non_null(p.a);
	new_epoch = auth_session_epoch(p.a);
	assert_true(new_epoch != old_epoch);

	/* Until the new A has echoed B, its messages are not trusted and B keeps the old epoch. */
	first_new = seal(p.a, "new 1");
	assert_int_equal(open_msg(p.b, &first_new), AUTH_STALE_EPOCH);
	assert_true(auth_session_peer_epoch(p.b) == old_epoch);
	assert_int_equal(open_msg(p.b, &delivered), AUTH_REPLAY);
	/* B heard the new A's challenge, and the replay did not overwrite it: B's next message proves B to
	 * the new A at once. */
	m = seal(p.b, "b");
	open_ok(p.a, &m, "b");
	assert_true(auth_session_peer_epoch(p.a) == auth_session_epoch(p.b));

	handshake(p.a, p.b);
	assert_true(auth_session_peer_epoch(p.b) == new_epoch);

	/* Recordings from before the restart: they echo an old challenge of B's. */
	assert_int_equal(open_msg(p.b, &delivered), AUTH_STALE_EPOCH);
	assert_int_equal(open_msg(p.b, &undelivered), AUTH_STALE_EPOCH);
	assert_true(auth_session_peer_epoch(p.b) == new_epoch);
	/* And the untrusted first message of the new epoch. */
	assert_true(open_msg(p.b, &first_new) != AUTH_OK);
	assert_true(auth_session_peer_epoch(p.b) == new_epoch);

	/* The replays did not disturb the pair. */
	m = seal(p.a, "still fine");
	open_ok(p.b, &m, "still fine");
	m = seal(p.b, "still fine");
	open_ok(p.a, &m, "still fine");
	pair_free(&p);
}

/* Replays from two earlier lives of A, interleaved with a third, all rejected. */
static void test_replay_across_several_restarts(void **state)
{
	struct pair p;
	struct msg life[3][2], m;
	int i, j;

	pair_up(&p);
	for (i = 0; i < 3; i++) {
		for (j = 0; j < 2; j++)
			life[i][j] = seal(p.a, "life");
		open_ok(p.b, &life[i][0], "life");
		auth_session_destroy(p.a);
		p.a = auth_session_create(p.kr, AUTH_KIND_HEARTBEAT, "lb-a", "lb-b");
		assert_non_null(p.a);
		handshake(p.a, p.b);
	}
	for (i = 0; i < 3; i++)
		for (j = 0; j < 2; j++)
			assert_int_equal(open_msg(p.b, &life[i][j]), AUTH_STALE_EPOCH);
	assert_true(auth_session_peer_epoch(p.b) == auth_session_epoch(p.a));
	m = seal(p.a, "now");
	open_ok(p.b, &m, "now");
	pair_free(&p);
}

/* The receiver restarts: old recordings echo a challenge the new receiver never issued. */
static void test_replay_after_receiver_restart(void **state)
{
	struct pair p;
	struct msg rec[3];
	int i;

	pair_up(&p);
	for (i = 0; i < 3; i++)
		rec[i] = seal(p.a, "rec");
	open_ok(p.b, &rec[0], "rec");
	auth_session_destroy(p.b);
	p.b = auth_session_create(p.kr, AUTH_KIND_HEARTBEAT, "lb-b", "lb-a");
	assert_non_null(p.b);
	for (i = 0; i < 3; i++)
		assert_int_equal(open_msg(p.b, &rec[i]), AUTH_STALE_EPOCH);
	assert_true(auth_session_peer_epoch(p.b) == 0);
	/* A did not restart but must prove its epoch to the new B, and B's new epoch to A, by echoes. */
	handshake(p.a, p.b);
	for (i = 0; i < 3; i++)
		assert_true(open_msg(p.b, &rec[i]) != AUTH_OK);
	pair_free(&p);
}

static void test_both_restart(void **state)
{
	struct pair p;
	struct msg old_a, old_b;

	pair_up(&p);
	old_a = seal(p.a, "old a");
	old_b = seal(p.b, "old b");
	auth_session_destroy(p.a);
	auth_session_destroy(p.b);
	p.a = auth_session_create(p.kr, AUTH_KIND_HEARTBEAT, "lb-a", "lb-b");
	p.b = auth_session_create(p.kr, AUTH_KIND_HEARTBEAT, "lb-b", "lb-a");
	assert_non_null(p.a);
	assert_non_null(p.b);
	/* Old recordings injected during the handshake must not be accepted nor derail it. */
	assert_int_equal(open_msg(p.b, &old_a), AUTH_STALE_EPOCH);
	assert_int_equal(open_msg(p.a, &old_b), AUTH_STALE_EPOCH);
	handshake(p.a, p.b);
	assert_int_equal(open_msg(p.b, &old_a), AUTH_STALE_EPOCH);
	assert_int_equal(open_msg(p.a, &old_b), AUTH_STALE_EPOCH);
	pair_free(&p);
}

/* A late but genuine message of the epoch B still trusts, arriving while A restarts, is accepted (it is
 * no replay); it also overwrites the challenge B echoes, which costs the handshake a round, no more. */
static void test_late_message_during_handshake(void **state)
{
	struct pair p;
	struct msg old_delivered, old_late, m;
	uint64_t old_epoch;

	pair_up(&p);
	old_epoch = auth_session_epoch(p.a);
	old_delivered = seal(p.a, "old");
	open_ok(p.b, &old_delivered, "old");
	old_late = seal(p.a, "late");
	auth_session_destroy(p.a);
	p.a = auth_session_create(p.kr, AUTH_KIND_HEARTBEAT, "lb-a", "lb-b");
	assert_non_null(p.a);
	m = seal(p.a, "a1");
	assert_int_equal(open_msg(p.b, &m), AUTH_STALE_EPOCH);
	open_ok(p.b, &old_late, "late");
	assert_int_equal(open_msg(p.b, &old_delivered), AUTH_REPLAY);
	assert_true(auth_session_peer_epoch(p.b) == old_epoch);
	/* B now echoes the old A's challenge, which the new A refuses; then the two converge. */
	m = seal(p.b, "b1");
	assert_int_equal(open_msg(p.a, &m), AUTH_STALE_EPOCH);
	handshake(p.a, p.b);
	assert_int_equal(open_msg(p.b, &old_late), AUTH_STALE_EPOCH);
	pair_free(&p);
}

/* Non-canonical encodings of a genuine message: same values, different bytes. All refused. */
static void test_non_canonical(void **state)
{
	struct pair p;
	struct msg m, t;
	size_t i;

	pair_up(&p);
	m = seal(p.a, "canonical");
	/* An overlong varint for version (field 1, value 1): 08 81 00. */
	assert_int_equal(m.b[0], 0x08);
	assert_int_equal(m.b[1], 0x01);
	t.len = 0;
	t.b[t.len++] = 0x08;
	t.b[t.len++] = 0x81;
	t.b[t.len++] = 0x00;
	memcpy(t.b + t.len, m.b + 2, m.len - 2);
	t.len += m.len - 2;
	assert_int_equal(open_msg(p.b, &t), AUTH_MALFORMED);
	/* An unknown field appended (field 15, varint 0), and the version field repeated. */
	t = m;
	t.b[t.len++] = 0x78;
	t.b[t.len++] = 0x00;
	assert_int_equal(open_msg(p.b, &t), AUTH_MALFORMED);
	t = m;
	t.b[t.len++] = 0x08;
	t.b[t.len++] = 0x01;
	assert_int_equal(open_msg(p.b, &t), AUTH_MALFORMED);
	/* The same fields in another order: version moved to the end. */
	t.len = 0;
	memcpy(t.b, m.b + 2, m.len - 2);
	t.len = m.len - 2;
	t.b[t.len++] = 0x08;
	t.b[t.len++] = 0x01;
	assert_int_equal(open_msg(p.b, &t), AUTH_MALFORMED);
	/* The sender with a NUL and more after it ("lb-a\0x"): field 4 follows kind (18 01). */
	for (i = 0; i + 1 < m.len && !(m.b[i] == 0x22 && m.b[i + 1] == 4); i++)
		;
	assert_true(i + 6 <= m.len);
	memcpy(t.b, m.b, i);
	t.len = i;
	t.b[t.len++] = 0x22;
	t.b[t.len++] = 6;
	memcpy(t.b + t.len, "lb-a\0x", 6);
	t.len += 6;
	memcpy(t.b + t.len, m.b + i + 6, m.len - i - 6);
	t.len += m.len - i - 6;
	assert_int_equal(open_msg(p.b, &t), AUTH_MALFORMED);
	open_ok(p.b, &m, "canonical");
	pair_free(&p);
}

/* ---- tampering ---- */

static void flip_box(Dsrlb__Envelope *e, void *arg)
{
	e->box.data[*(size_t *)arg] ^= 0x01;
}
static void bump_epoch(Dsrlb__Envelope *e, void *arg)     { e->epoch ^= 1; }
static void bump_counter(Dsrlb__Envelope *e, void *arg)   { e->counter += 1; }
static void bump_challenge(Dsrlb__Envelope *e, void *arg) { e->challenge ^= 1ull << 63; }
static void bump_echo(Dsrlb__Envelope *e, void *arg)      { e->echo ^= 1; }
static void zero_echo(Dsrlb__Envelope *e, void *arg)      { e->echo = 0; }
static void set_version(Dsrlb__Envelope *e, void *arg)    { e->version = *(uint32_t *)arg; }
static void set_key_id(Dsrlb__Envelope *e, void *arg)     { e->key_id = *(uint32_t *)arg; }
static void set_kind(Dsrlb__Envelope *e, void *arg)       { e->kind = *(Dsrlb__Kind *)arg; }
static void set_sender(Dsrlb__Envelope *e, void *arg)
{
	free(e->sender);        /* protobuf-c's default allocator is malloc */
	e->sender = strdup(arg);
	assert_non_null(e->sender);
}
static void shorten_box(Dsrlb__Envelope *e, void *arg)    { e->box.len = *(size_t *)arg; }
static void zero_counter(Dsrlb__Envelope *e, void *arg)   { e->counter = 0; }
static void zero_epoch(Dsrlb__Envelope *e, void *arg)     { e->epoch = 0; }
static void identity(Dsrlb__Envelope *e, void *arg)       { }

static void test_tamper_box(void **state)
{
	struct pair p;
	struct msg m, t;
	Dsrlb__Envelope *env;
	size_t i, box_len;

	pair_up(&p);
	m = seal(p.a, "tamper with me");
	env = peek(&m);
	box_len = env->box.len;
	dsrlb__envelope__free_unpacked(env, NULL);
	assert_int_equal(box_len, strlen("tamper with me") + 16);
	for (i = 0; i < box_len; i++) {
		t = rewrite(&m, flip_box, &i);
		assert_int_equal(open_msg(p.b, &t), AUTH_BAD_MAC);
	}
	for (i = 0; i < box_len; i++) {
		t = rewrite(&m, shorten_box, &i);
		assert_int_equal(open_msg(p.b, &t), i < 16 ? AUTH_MALFORMED : AUTH_BAD_MAC);
	}
	/* A re-encoding that changes nothing is the same message. */
	t = rewrite(&m, identity, NULL);
	open_ok(p.b, &t, "tamper with me");
	assert_int_equal(open_msg(p.b, &m), AUTH_REPLAY);
	pair_free(&p);
}

static void test_tamper_header(void **state)
{
	struct pair p;
	struct auth_session *bx, *b_sync;
	struct auth_keyring *kr12;
	struct msg m, t;
	uint32_t v, id;
	Dsrlb__Kind kind;
	enum auth_result r;

	pair_up(&p);
	m = seal(p.a, "header");

	/* Fields that are only authenticated. */
	t = rewrite(&m, bump_epoch, NULL);
	assert_int_equal(open_msg(p.b, &t), AUTH_BAD_MAC);
	t = rewrite(&m, bump_counter, NULL);
	assert_int_equal(open_msg(p.b, &t), AUTH_BAD_MAC);
	t = rewrite(&m, bump_challenge, NULL);
	assert_int_equal(open_msg(p.b, &t), AUTH_BAD_MAC);
	t = rewrite(&m, bump_echo, NULL);
	assert_int_equal(open_msg(p.b, &t), AUTH_BAD_MAC);
	t = rewrite(&m, zero_echo, NULL);
	assert_int_equal(open_msg(p.b, &t), AUTH_BAD_MAC);

	/* Fields that are also checked before the MAC. */
	for (v = 0; v < 5; v++) {
		if (v == 1)
			continue;
		t = rewrite(&m, set_version, &v);
		assert_int_equal(open_msg(p.b, &t), AUTH_MALFORMED);
	}
	id = auth_keyring_id(p.kr, 0) ^ 1;
	t = rewrite(&m, set_key_id, &id);
	assert_int_equal(open_msg(p.b, &t), AUTH_UNKNOWN_KEY);
	kind = DSRLB__KIND__KIND_SYNC;
	t = rewrite(&m, set_kind, &kind);
	assert_int_equal(open_msg(p.b, &t), AUTH_WRONG_KIND);
	kind = DSRLB__KIND__KIND_NONE;
	t = rewrite(&m, set_kind, &kind);
	assert_int_equal(open_msg(p.b, &t), AUTH_WRONG_KIND);
	t = rewrite(&m, set_sender, "lb-c");
	assert_int_equal(open_msg(p.b, &t), AUTH_UNKNOWN_NODE);
	t = rewrite(&m, set_sender, "");
	assert_int_equal(open_msg(p.b, &t), AUTH_UNKNOWN_NODE);
	t = rewrite(&m, set_sender, "lb-a\xff");
	r = open_msg(p.b, &t);
	assert_true(r == AUTH_UNKNOWN_NODE || r == AUTH_MALFORMED);   /* if protobuf-c checks UTF-8 */
	t = rewrite(&m, zero_counter, NULL);
	assert_int_equal(open_msg(p.b, &t), AUTH_MALFORMED);
	t = rewrite(&m, zero_epoch, NULL);
	assert_int_equal(open_msg(p.b, &t), AUTH_MALFORMED);

	/* ... and still authenticated where the receiver would accept the new value. */
	bx = auth_session_create(p.kr, AUTH_KIND_HEARTBEAT, "lb-b", "lb-x");
	assert_non_null(bx);
	t = rewrite(&m, set_sender, "lb-x");
	assert_int_equal(open_msg(bx, &t), AUTH_BAD_MAC);
	b_sync = auth_session_create(p.kr, AUTH_KIND_SYNC, "lb-b", "lb-a");
	assert_non_null(b_sync);
	kind = DSRLB__KIND__KIND_SYNC;
	t = rewrite(&m, set_kind, &kind);
	assert_int_equal(open_msg(b_sync, &t), AUTH_BAD_MAC);
	kr12 = ring(key2, key1);
	auth_session_set_keyring(p.b, kr12);
	id = auth_keyring_id(kr12, 0);
	t = rewrite(&m, set_key_id, &id);
	assert_int_equal(open_msg(p.b, &t), AUTH_BAD_MAC);

	/* None of that changed B: the genuine message still opens, once. */
	open_ok(p.b, &m, "header");
	assert_int_equal(open_msg(p.b, &m), AUTH_REPLAY);
	auth_session_destroy(bx);
	auth_session_destroy(b_sync);
	pair_free(&p);
	auth_keyring_destroy(kr12);
}

/* Every single-bit flip and every truncation of the wire bytes fails, and leaves B as it was. */
static void test_bitflips_and_truncation(void **state)
{
	struct pair p;
	struct msg m, t;
	uint64_t epoch;
	size_t i, bit;

	pair_up(&p);
	epoch = auth_session_peer_epoch(p.b);
	m = seal(p.a, "every bit counts");
	for (i = 0; i < m.len; i++) {
		for (bit = 0; bit < 8; bit++) {
			t = m;
			t.b[i] ^= (uint8_t)(1u << bit);
			if (open_msg(p.b, &t) == AUTH_OK)
				fail_msg("flipping bit %zu of byte %zu went unnoticed", bit, i);
		}
	}
	for (i = 0; i < m.len; i++) {
		t = m;
		t.len = i;
		assert_true(open_msg(p.b, &t) != AUTH_OK);
	}
	/* Trailing garbage is a protobuf decoding question; it must never yield a second OK. */
	t = m;
	t.b[t.len++] = 0;
	assert_true(open_msg(p.b, &t) != AUTH_OK);
	assert_true(auth_session_peer_epoch(p.b) == epoch);
	open_ok(p.b, &m, "every bit counts");
	pair_free(&p);
}

static void test_random_garbage(void **state)
{
	struct pair p;
	struct msg t;
	uint8_t box[300];
	Dsrlb__Envelope env = DSRLB__ENVELOPE__INIT;
	int i;

	pair_up(&p);
	for (i = 0; i < 10000; i++) {
		t.len = randombytes_uniform(sizeof(t.b) + 1);
		randombytes_buf(t.b, t.len);
		assert_true(open_msg(p.b, &t) != AUTH_OK);
	}
	/* Garbage in a well-formed envelope reaches the AEAD. */
	env.version = 1;
	env.key_id = auth_keyring_id(p.kr, 0);
	env.kind = DSRLB__KIND__KIND_HEARTBEAT;
	env.sender = "lb-a";
	for (i = 0; i < 10000; i++) {
		randombytes_buf(&env.epoch, sizeof(env.epoch));
		env.epoch = (i & 1) ? auth_session_peer_epoch(p.b) : env.epoch;
		randombytes_buf(&env.counter, sizeof(env.counter));
		randombytes_buf(&env.challenge, sizeof(env.challenge));
		randombytes_buf(&env.echo, sizeof(env.echo));
		env.box.len = randombytes_uniform(sizeof(box) + 1);
		env.box.data = box;
		randombytes_buf(box, env.box.len);
		t.len = dsrlb__envelope__pack(&env, t.b);
		if (env.box.len < 16)
			assert_int_equal(open_msg(p.b, &t), AUTH_MALFORMED);
		else
			assert_int_equal(open_msg(p.b, &t), AUTH_BAD_MAC);
	}
	t = seal(p.a, "alive");
	open_ok(p.b, &t, "alive");
	pair_free(&p);
}

/* ---- sizes ---- */

static void test_sizes(void **state)
{
	struct pair p;
	uint8_t *big = malloc(AUTH_MAX_MSG + 1), *env = malloc(AUTH_MAX_ENVELOPE + 100);
	uint8_t *out = malloc(AUTH_MAX_MSG);
	size_t len = 0, out_len = 0;
	struct msg m, t;
	size_t blen;

	assert_non_null(big);
	assert_non_null(env);
	assert_non_null(out);
	pair_up(&p);
	randombytes_buf(big, AUTH_MAX_MSG + 1);

	errno = 0;
	assert_int_equal(auth_seal(p.a, big, AUTH_MAX_MSG + 1, env, AUTH_MAX_ENVELOPE + 100, &len), -1);
	assert_int_equal(errno, EMSGSIZE);
	/* The largest payload fits the largest envelope, with the longest name. */
	{
		char name[AUTH_NAME_MAX + 1];
		struct auth_session *la, *lb;

		memset(name, 'n', AUTH_NAME_MAX);
		name[AUTH_NAME_MAX] = '\0';
		la = auth_session_create(p.kr, AUTH_KIND_SYNC, name, "peer");
		lb = auth_session_create(p.kr, AUTH_KIND_SYNC, "peer", name);
		assert_non_null(la);
		assert_non_null(lb);
		handshake(la, lb);
		assert_int_equal(auth_seal(la, big, AUTH_MAX_MSG, env, AUTH_MAX_ENVELOPE, &len), 0);
		assert_true(len <= AUTH_MAX_ENVELOPE);
		/* Caller's buffer one byte short: TOO_BIG, and nothing consumed. */
		assert_int_equal(auth_open(lb, env, len, out, AUTH_MAX_MSG - 1, &out_len), AUTH_TOO_BIG);
		assert_int_equal(auth_open(lb, env, len, out, AUTH_MAX_MSG, &out_len), AUTH_OK);
		assert_int_equal(out_len, AUTH_MAX_MSG);
		assert_memory_equal(out, big, AUTH_MAX_MSG);
		auth_session_destroy(la);
		auth_session_destroy(lb);
	}

	/* Output buffer too small: -1 ENOBUFS, and the counter is not consumed. */
	m = seal(p.a, "0123456789");
	open_ok(p.b, &m, "0123456789");
	errno = 0;
	assert_int_equal(auth_seal(p.a, (const uint8_t *)"0123456789", 10, t.b, m.len - 1, &len), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(auth_seal(p.a, (const uint8_t *)"0123456789", 10, t.b, m.len, &t.len), 0);
	assert_int_equal(t.len, m.len);
	{
		Dsrlb__Envelope *e1 = peek(&m), *e2 = peek(&t);

		assert_true(e2->counter == e1->counter + 1);
		dsrlb__envelope__free_unpacked(e1, NULL);
		dsrlb__envelope__free_unpacked(e2, NULL);
	}
	open_ok(p.b, &t, "0123456789");

	/* An envelope longer than any we send. */
	memset(env, 0, AUTH_MAX_ENVELOPE + 100);
	assert_int_equal(auth_open(p.b, env, AUTH_MAX_ENVELOPE + 1, out, AUTH_MAX_MSG, &out_len), AUTH_TOO_BIG);
	/* A crafted envelope whose box claims more than AUTH_MAX_MSG. */
	{
		Dsrlb__Envelope *e = peek(&m);
		uint8_t *box = calloc(1, AUTH_MAX_MSG + 17), *orig = e->box.data;
		size_t orig_len = e->box.len;

		assert_non_null(box);
		e->box.data = box;
		e->box.len = AUTH_MAX_MSG + 17;
		blen = dsrlb__envelope__pack(e, env);
		assert_true(blen <= AUTH_MAX_ENVELOPE);
		assert_int_equal(auth_open(p.b, env, blen, out, AUTH_MAX_MSG, &out_len), AUTH_TOO_BIG);
		e->box.data = orig;
		e->box.len = orig_len;
		free(box);
		dsrlb__envelope__free_unpacked(e, NULL);
	}
	/* A real message opened into too small a buffer, then into a big enough one. */
	t = seal(p.a, "0123456789");
	assert_int_equal(auth_open(p.b, t.b, t.len, out, 9, &out_len), AUTH_TOO_BIG);
	assert_int_equal(out_len, 0);
	open_ok(p.b, &t, "0123456789");
	pair_free(&p);
	free(big);
	free(env);
	free(out);
}

/* ---- keys ---- */

static void test_wrong_key(void **state)
{
	struct auth_keyring *k1 = ring(key1, NULL), *k3 = ring(key3, NULL);
	struct auth_session *a = auth_session_create(k1, AUTH_KIND_HEARTBEAT, "lb-a", "lb-b");
	struct auth_session *b = auth_session_create(k3, AUTH_KIND_HEARTBEAT, "lb-b", "lb-a");
	struct msg m, t;
	uint32_t id = auth_keyring_id(k3, 0);

	assert_non_null(a);
	assert_non_null(b);
	assert_true(auth_keyring_id(k1, 0) != auth_keyring_id(k3, 0));
	m = seal(a, "x");
	assert_int_equal(open_msg(b, &m), AUTH_UNKNOWN_KEY);
	t = rewrite(&m, set_key_id, &id);
	assert_int_equal(open_msg(b, &t), AUTH_BAD_MAC);
	m = seal(b, "y");
	assert_int_equal(open_msg(a, &m), AUTH_UNKNOWN_KEY);
	assert_true(auth_session_peer_epoch(a) == 0);
	assert_true(auth_session_peer_epoch(b) == 0);
	auth_session_destroy(a);
	auth_session_destroy(b);
	auth_keyring_destroy(k1);
	auth_keyring_destroy(k3);
}

static void test_rotation(void **state)
{
	struct auth_keyring *k1 = ring(key1, NULL), *k12 = ring(key1, key2), *k21 = ring(key2, key1);
	struct auth_keyring *k2 = ring(key2, NULL);
	struct auth_session *a = auth_session_create(k21, AUTH_KIND_SYNC, "lb-a", "lb-b");
	struct auth_session *b = auth_session_create(k12, AUTH_KIND_SYNC, "lb-b", "lb-a");
	struct msg m;
	Dsrlb__Envelope *env;
	uint64_t ea;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(auth_keyring_count(k12), 2);
	assert_true(auth_keyring_id(k12, 0) == auth_keyring_id(k21, 1));
	assert_true(auth_keyring_id(k12, 1) == auth_keyring_id(k21, 0));
	assert_true(auth_keyring_id(k12, 2) == 0);

	/* A already seals with key2, B still with key1; each opens the other's. */
	handshake(a, b);
	m = seal(a, "k2");
	env = peek(&m);
	assert_true(env->key_id == auth_keyring_id(k2, 0));
	dsrlb__envelope__free_unpacked(env, NULL);
	open_ok(b, &m, "k2");
	m = seal(b, "k1");
	env = peek(&m);
	assert_true(env->key_id == auth_keyring_id(k1, 0));
	dsrlb__envelope__free_unpacked(env, NULL);
	open_ok(a, &m, "k1");

	/* Rotation completes on both: no new handshake, and key1 no longer opens. */
	ea = auth_session_peer_epoch(b);
	auth_session_set_keyring(b, k2);
	m = seal(a, "k2 only");
	open_ok(b, &m, "k2 only");
	assert_true(auth_session_peer_epoch(b) == ea);
	auth_session_set_keyring(a, k2);
	m = seal(b, "k2 too");
	open_ok(a, &m, "k2 too");
	auth_session_set_keyring(a, k1);
	m = seal(a, "old key");
	assert_int_equal(open_msg(b, &m), AUTH_UNKNOWN_KEY);

	auth_session_destroy(a);
	auth_session_destroy(b);
	auth_keyring_destroy(k1);
	auth_keyring_destroy(k2);
	auth_keyring_destroy(k12);
	auth_keyring_destroy(k21);
}

/* Heartbeat and sync subkeys differ: a message of one kind never opens in the other. */
static void test_kind_separation(void **state)
{
	struct pair hb, sy;
	struct msg m, t;
	Dsrlb__Kind kind = DSRLB__KIND__KIND_SYNC;

	pair_up(&hb);
	pair_init(&sy, AUTH_KIND_SYNC);
	handshake(sy.a, sy.b);
	m = seal(hb.a, "hb");
	assert_int_equal(open_msg(sy.b, &m), AUTH_WRONG_KIND);
	t = rewrite(&m, set_kind, &kind);
	assert_int_equal(open_msg(sy.b, &t), AUTH_BAD_MAC);
	m = seal(sy.a, "sy");
	assert_int_equal(open_msg(hb.b, &m), AUTH_WRONG_KIND);
	open_ok(sy.b, &m, "sy");
	pair_free(&hb);
	pair_free(&sy);
}

static void put_be(uint8_t **p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		*(*p)++ = (uint8_t)(v >> (8 * i));
}

/* Re-derives by hand what auth.c documents (key id, subkeys, nonce, associated data) and opens sealed
 * messages of both kinds with it, so the wire format cannot change unnoticed and each kind is shown to
 * use its own subkey. */
static void check_wire_format(enum auth_kind kind)
{
	struct auth_keyring *kr = ring(key1, NULL);
	struct auth_session *a = auth_session_create(kr, kind, "lb-a", "lb-b");
	uint8_t h[32], hb[32], sy[32], ad[128], nonce[24], out[64], *p = ad;
	const uint8_t *right = kind == AUTH_KIND_HEARTBEAT ? hb : sy, *wrong = kind == AUTH_KIND_HEARTBEAT ? sy : hb;
	unsigned long long out_len = 0;
	Dsrlb__Envelope *env;
	struct msg m;

	assert_non_null(a);
	m = seal(a, "known answer");
	env = peek(&m);

	crypto_generichash(h, 32, (const uint8_t *)"dsrlb key id", 12, key1, AUTH_KEY_LEN);
	assert_true(env->key_id == ((uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3]));
	assert_true(env->key_id == auth_keyring_id(kr, 0));
	assert_int_equal(env->version, 1);
	assert_int_equal(env->kind, (Dsrlb__Kind)kind);
	assert_string_equal(env->sender, "lb-a");
	assert_true(env->epoch == auth_session_epoch(a));
	assert_true(env->counter == 1);
	assert_true(env->challenge != 0);
	assert_true(env->echo == 0);

	memcpy(p, "dsrlb-envelope-1", 16);
	p += 16;
	put_be(&p, env->version, 4);
	put_be(&p, env->key_id, 4);
	put_be(&p, (uint32_t)env->kind, 4);
	put_be(&p, 4, 2);
	memcpy(p, "lb-a", 4);
	p += 4;
	put_be(&p, env->epoch, 8);
	put_be(&p, env->counter, 8);
	put_be(&p, env->challenge, 8);
	put_be(&p, env->echo, 8);

	nonce[0] = (uint8_t)kind;
	for (int i = 0; i < 8; i++) {
		nonce[1 + i] = (uint8_t)(env->epoch >> (8 * i));
		nonce[9 + i] = (uint8_t)(env->counter >> (8 * i));
	}
	crypto_generichash(h, 32, (const uint8_t *)"lb-a", 4, NULL, 0);
	memcpy(nonce + 17, h, 7);

	assert_int_equal(crypto_kdf_derive_from_key(hb, 32, 1, "dsrlb-hb", key1), 0);
	assert_int_equal(crypto_kdf_derive_from_key(sy, 32, 1, "dsrlb-sy", key1), 0);
	assert_memory_not_equal(hb, sy, 32);
	assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(out, &out_len, NULL, env->box.data,
		env->box.len, ad, (size_t)(p - ad), nonce, right), 0);
	assert_int_equal(out_len, 12);
	assert_memory_equal(out, "known answer", 12);
	assert_int_not_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(out, &out_len, NULL, env->box.data,
		env->box.len, ad, (size_t)(p - ad), nonce, wrong), 0);
	assert_int_not_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(out, &out_len, NULL, env->box.data,
		env->box.len, ad, (size_t)(p - ad), nonce, key1), 0);

	dsrlb__envelope__free_unpacked(env, NULL);
	auth_session_destroy(a);
	auth_keyring_destroy(kr);
}

static void test_wire_format(void **state)
{
	check_wire_format(AUTH_KIND_HEARTBEAT);
	check_wire_format(AUTH_KIND_SYNC);
}

static void test_session_args(void **state)
{
	struct auth_keyring *kr = ring(key1, NULL);
	char name[AUTH_NAME_MAX + 2];

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_null(auth_session_create(NULL, AUTH_KIND_SYNC, "a", "b"));
	assert_null(auth_session_create(kr, (enum auth_kind)0, "a", "b"));
	assert_null(auth_session_create(kr, (enum auth_kind)3, "a", "b"));
	assert_null(auth_session_create(kr, AUTH_KIND_SYNC, "a", "a"));
	assert_null(auth_session_create(kr, AUTH_KIND_SYNC, "", "b"));
	assert_null(auth_session_create(kr, AUTH_KIND_SYNC, "a", NULL));
	assert_null(auth_session_create(kr, AUTH_KIND_SYNC, name, "b"));
	assert_null(auth_session_create(kr, AUTH_KIND_SYNC, "a", name));
	assert_null(auth_keyring_from_bytes((const uint8_t (*)[AUTH_KEY_LEN])key1, 0));
	assert_null(auth_keyring_from_bytes((const uint8_t (*)[AUTH_KEY_LEN])key1, 3));
	auth_session_destroy(NULL);
	auth_keyring_destroy(NULL);
	assert_int_equal(auth_keyring_count(NULL), 0);
	assert_true(auth_keyring_id(NULL, 0) == 0);
	auth_keyring_destroy(kr);
}

static void test_result_str(void **state)
{
	const char *seen[AUTH_TOO_BIG + 1];
	int i, j;

	for (i = AUTH_OK; i <= AUTH_TOO_BIG; i++) {
		seen[i] = auth_result_str((enum auth_result)i);
		assert_non_null(seen[i]);
		assert_string_not_equal(seen[i], "unknown result");
		for (j = 0; j < i; j++)
			assert_string_not_equal(seen[i], seen[j]);
	}
	assert_string_equal(auth_result_str((enum auth_result)99), "unknown result");
}

/* ---- key files ---- */

static char tmpdir[64];

static int files_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_auth.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int files_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *tpath(const char *name)
{
	static char buf[4][128];
	static int next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
	return p;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* Loads one file and expects failure with an error that names it and contains what. */
static void load_fails(const char *path, const char *what)
{
	char err[512] = "";
	const char *paths[1] = { path };

	assert_null(auth_keyring_load(paths, 1, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	if (what != NULL && strstr(err, what) == NULL)
		fail_msg("error '%s' lacks '%s'", err, what);
}

static void test_keygen(void **state)
{
	const char *path = tpath("cluster.key");
	char err[512] = "", hex[80] = "";
	uint8_t raw[AUTH_KEY_LEN];
	struct auth_keyring *from_file, *from_bytes;
	const char *paths[1] = { path };
	struct stat st;
	mode_t old_umask;
	size_t bin_len = 0;
	FILE *f;

	/* Even a permissive umask gives 0600. */
	old_umask = umask(0);
	assert_int_equal(auth_keygen(path, err, sizeof(err)), 0);
	umask(old_umask);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 65);

	/* Refuses to overwrite, and says which file. */
	errno = 0;
	assert_int_equal(auth_keygen(path, err, sizeof(err)), -1);
	assert_int_equal(errno, EEXIST);
	assert_non_null(strstr(err, path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 65);
	assert_int_equal(auth_keygen(tpath("no/such/dir/key"), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no/such/dir/key"));

	/* Round trip: the file's key is the key the hex says. */
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(hex, sizeof(hex), f));
	fclose(f);
	assert_int_equal(strlen(hex), 65);
	assert_int_equal(hex[64], '\n');
	assert_int_equal(sodium_hex2bin(raw, sizeof(raw), hex, 64, NULL, &bin_len, NULL), 0);
	assert_int_equal(bin_len, AUTH_KEY_LEN);
	from_file = auth_keyring_load(paths, 1, err, sizeof(err));
	assert_non_null(from_file);
	assert_string_equal(err, "");
	from_bytes = auth_keyring_from_bytes((const uint8_t (*)[AUTH_KEY_LEN])raw, 1);
	assert_non_null(from_bytes);
	assert_true(auth_keyring_id(from_file, 0) == auth_keyring_id(from_bytes, 0));
	assert_true(auth_keyring_id(from_file, 0) != 0);
	auth_keyring_destroy(from_bytes);

	/* Two generated keys differ, and load as a rotation pair in order. */
	{
		const char *two[2] = { tpath("next.key"), path };
		struct auth_keyring *kr;

		assert_int_equal(auth_keygen(two[0], err, sizeof(err)), 0);
		kr = auth_keyring_load(two, 2, err, sizeof(err));
		assert_non_null(kr);
		assert_int_equal(auth_keyring_count(kr), 2);
		assert_true(auth_keyring_id(kr, 1) == auth_keyring_id(from_file, 0));
		assert_true(auth_keyring_id(kr, 0) != auth_keyring_id(kr, 1));
		auth_keyring_destroy(kr);
	}
	auth_keyring_destroy(from_file);
}

static void test_key_file_formats(void **state)
{
	char hex[2 * AUTH_KEY_LEN + 1], buf[128], err[512];
	struct auth_keyring *kr, *ref = ring(key2, NULL);
	const char *path = tpath("fmt.key");
	const char *paths[1] = { path };
	uint8_t zero[AUTH_KEY_LEN] = { 0 };

	sodium_bin2hex(hex, sizeof(hex), key2, AUTH_KEY_LEN);

	/* Accepted: hex with "\n", "\r\n" or nothing after it, upper case, raw 32 bytes. */
	snprintf(buf, sizeof(buf), "%s\n", hex);
	write_file(path, buf, strlen(buf), 0600);
	kr = auth_keyring_load(paths, 1, err, sizeof(err));
	assert_non_null(kr);
	assert_true(auth_keyring_id(kr, 0) == auth_keyring_id(ref, 0));
	auth_keyring_destroy(kr);
	snprintf(buf, sizeof(buf), "%s\r\n", hex);
	write_file(path, buf, strlen(buf), 0400);
	kr = auth_keyring_load(paths, 1, err, sizeof(err));
	assert_non_null(kr);
	assert_true(auth_keyring_id(kr, 0) == auth_keyring_id(ref, 0));
	auth_keyring_destroy(kr);
	for (size_t i = 0; i < 64; i++)
		buf[i] = (char)(hex[i] >= 'a' ? hex[i] - 32 : hex[i]);
	write_file(path, buf, 64, 0600);
	kr = auth_keyring_load(paths, 1, err, sizeof(err));
	assert_non_null(kr);
	assert_true(auth_keyring_id(kr, 0) == auth_keyring_id(ref, 0));
	auth_keyring_destroy(kr);
	write_file(path, key2, AUTH_KEY_LEN, 0600);
	kr = auth_keyring_load(paths, 1, err, sizeof(err));
	assert_non_null(kr);
	assert_true(auth_keyring_id(kr, 0) == auth_keyring_id(ref, 0));
	auth_keyring_destroy(kr);

	/* Group-readable: loads, with a warning naming the file. */
	write_file(path, key2, AUTH_KEY_LEN, 0640);
	kr = auth_keyring_load(paths, 1, err, sizeof(err));
	assert_non_null(kr);
	assert_non_null(strstr(err, path));
	auth_keyring_destroy(kr);
	/* ...and without one when that group is the daemons' own (they re-read it after dropping root). */
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	kr = auth_keyring_load_for(paths, 1, st.st_gid, err, sizeof(err));
	assert_non_null(kr);
	assert_string_equal(err, "");
	auth_keyring_destroy(kr);
	kr = auth_keyring_load_for(paths, 1, st.st_gid + 1, err, sizeof(err));
	assert_non_null(kr);
	assert_non_null(strstr(err, path));
	auth_keyring_destroy(kr);

	/* Refused, each with the path in the message. */
	write_file(path, key2, AUTH_KEY_LEN, 0644);
	load_fails(path, "mode 0644");
	write_file(path, key2, AUTH_KEY_LEN, 0604);
	load_fails(path, "mode");
	write_file(path, key2, AUTH_KEY_LEN, 0620);
	load_fails(path, "mode");
	write_file(path, key2, AUTH_KEY_LEN, 0601);
	load_fails(path, "mode");
	write_file(path, key2, AUTH_KEY_LEN - 1, 0600);
	load_fails(path, "wrong size");
	write_file(path, hex, AUTH_KEY_LEN + 1, 0600);
	load_fails(path, "wrong size");
	write_file(path, "", 0, 0600);
	load_fails(path, "wrong size");
	write_file(path, hex, 63, 0600);
	load_fails(path, "wrong size");
	snprintf(buf, sizeof(buf), "%s\n\n\n", hex);
	write_file(path, buf, strlen(buf), 0600);
	load_fails(path, "wrong size");
	snprintf(buf, sizeof(buf), "%s  ", hex);
	write_file(path, buf, strlen(buf), 0600);
	load_fails(path, "after 64 hex");
	snprintf(buf, sizeof(buf), "%s\n", hex);
	buf[10] = 'g';
	write_file(path, buf, strlen(buf), 0600);
	load_fails(path, "hex");
	snprintf(buf, sizeof(buf), "%s\n", hex);
	buf[63] = ' ';
	write_file(path, buf, strlen(buf), 0600);
	load_fails(path, "hex");
	write_file(path, zero, sizeof(zero), 0600);
	load_fails(path, "zeros");
	load_fails(tpath("missing.key"), "No such file");
	load_fails(tmpdir, NULL);

	/* The second file's error is reported, naming the second file. */
	{
		const char *two[2] = { tpath("good.key"), tpath("bad.key") };

		write_file(two[0], key1, AUTH_KEY_LEN, 0600);
		write_file(two[1], "nope\n", 5, 0600);
		assert_null(auth_keyring_load(two, 2, err, sizeof(err)));
		assert_non_null(strstr(err, two[1]));
		assert_null(auth_keyring_load(two, 0, err, sizeof(err)));
		assert_null(auth_keyring_load(two, 3, err, sizeof(err)));
	}
	auth_keyring_destroy(ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_fresh),
		cmocka_unit_test(test_handshake_helper_both_orders),
		cmocka_unit_test(test_one_way_never_trusted),
		cmocka_unit_test(test_empty_payload),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_pre_proof_messages_rejected),
		cmocka_unit_test(test_replay_after_sender_restart),
		cmocka_unit_test(test_replay_across_several_restarts),
		cmocka_unit_test(test_replay_after_receiver_restart),
		cmocka_unit_test(test_both_restart),
		cmocka_unit_test(test_late_message_during_handshake),
		cmocka_unit_test(test_non_canonical),
		cmocka_unit_test(test_tamper_box),
		cmocka_unit_test(test_tamper_header),
		cmocka_unit_test(test_bitflips_and_truncation),
		cmocka_unit_test(test_random_garbage),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_kind_separation),
		cmocka_unit_test(test_wire_format),
		cmocka_unit_test(test_session_args),
		cmocka_unit_test(test_result_str),
		cmocka_unit_test(test_keygen),
		cmocka_unit_test(test_key_file_formats),
	};

	if (sodium_init() < 0)
		return 1;
	memset(key1, 0x11, sizeof(key1));
	for (size_t i = 0; i < AUTH_KEY_LEN; i++) {
		key2[i] = (uint8_t)(i * 7 + 3);
		key3[i] = (uint8_t)(0xa5 ^ i);
	}
	return cmocka_run_group_tests(tests, files_setup, files_teardown);
}
