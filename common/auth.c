/* Cluster keys and the sealed envelope: XChaCha20-Poly1305 over the inner message, with every other
 * envelope field as associated data, and replay protection that needs no synchronised clocks and
 * survives restarts of either node.
 *
 * Replay protection. Each side of a session has a random epoch (new at every start), a counter that
 * rises from 1, and a random challenge. A receiver accepts a message of the peer epoch it has accepted
 * when its counter passes a 64-message sliding window. It accepts a *new* peer epoch only from a message
 * that echoes its current challenge; it then draws a new challenge and treats that epoch's earlier
 * counters as already seen. A recording, from before or after a restart of its sender, either falls in
 * the window of the accepted epoch or echoes a challenge that is no longer current, so it is rejected.
 * The challenge of every authentic message that is not a replay is remembered and echoed in our own
 * messages, which is how the peer learns what to echo.
 *
 *   A (new epoch Ea, challenge ca)            B (new epoch Eb, challenge cb)
 *   {Ea, 1, ch=ca, echo=0}  ----------->      STALE_EPOCH; remembers ca
 *                           <-----------      {Eb, 1, ch=cb, echo=ca}
 *   echo == ca: accepts Eb, ca := ca'
 *   {Ea, 2, ch=ca', echo=cb} ---------->      echo == cb: accepts Ea, cb := cb'
 *                           <-----------      {Eb, 2, ...}: in epoch Eb, window check: OK
 *
 * So after a restart a peer's first messages are not trusted (STALE_EPOCH) until it has echoed one of
 * ours: the pair converges within one round trip, and only if both sides send. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"
#include "heartbeat.pb-c.h"

#define AUTH_VERSION     1
#define AUTH_WINDOW      64
#define AUTH_ABYTES      crypto_aead_xchacha20poly1305_ietf_ABYTES
#define AUTH_NONCE_LEN   crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define AUTH_SUBKEY_ID   1
/* The associated data: a tag, version, key_id, kind, sender length and bytes, epoch, counter, challenge,
 * echo; integers big-endian. */
#define AUTH_AD_TAG      "dsrlb-envelope-1"
#define AUTH_AD_MAX      (sizeof(AUTH_AD_TAG) - 1 + 4 + 4 + 4 + 2 + AUTH_NAME_MAX + 8 * 4)
/* A key file is at most 64 hex digits and "\r\n"; read one byte more to see a longer one. */
#define AUTH_FILE_MAX    (2 * AUTH_KEY_LEN + 2)

_Static_assert(crypto_kdf_CONTEXTBYTES == 8, "subkey contexts are 8 bytes");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == AUTH_KEY_LEN, "AEAD key size");
_Static_assert(crypto_kdf_KEYBYTES == AUTH_KEY_LEN, "KDF key size");
_Static_assert(AUTH_MAX_ENVELOPE <= 65507, "an envelope fits one UDP datagram");

struct auth_key {
	uint32_t id;
	uint8_t hb[AUTH_KEY_LEN];       /* subkey "dsrlb-hb" */
	uint8_t sy[AUTH_KEY_LEN];       /* subkey "dsrlb-sy" */
};

struct auth_keyring {
	size_t n;
	struct auth_key keys[AUTH_MAX_KEYS];
};

struct auth_session {
	const struct auth_keyring *kr;
	enum auth_kind kind;
	char my_name[AUTH_NAME_MAX + 1];
	char peer_name[AUTH_NAME_MAX + 1];
	/* Nonce padding: the first bytes of BLAKE2b-256 of the names, so the two senders' nonces differ
	 * even if their epochs collide (both nodes seal with the same subkey). */
	uint8_t my_name_hash[AUTH_NONCE_LEN - 17];
	uint8_t peer_name_hash[AUTH_NONCE_LEN - 17];
	uint64_t my_epoch;
	uint64_t my_counter;            /* of the last message sealed */
	uint64_t my_challenge;          /* never 0 */
	uint64_t peer_epoch;            /* 0 = none accepted */
	uint64_t peer_highest;          /* highest counter accepted in peer_epoch */
	uint64_t peer_bitmap;           /* bit i: counter peer_highest - i was accepted */
	uint64_t peer_challenge;        /* last challenge heard from the peer; echoed by us */
	uint8_t box[AUTH_MAX_MSG + AUTH_ABYTES];  /* seal's ciphertext, so sealing does not allocate */
};

const char *auth_result_str(enum auth_result r)
{
	switch (r) {
	case AUTH_OK:           return "ok";
	case AUTH_MALFORMED:    return "malformed";
	case AUTH_UNKNOWN_KEY:  return "unknown key";
	case AUTH_BAD_MAC:      return "bad mac";
	case AUTH_REPLAY:       return "replay";
	case AUTH_STALE_EPOCH:  return "stale epoch";
	case AUTH_UNKNOWN_NODE: return "unknown node";
	case AUTH_WRONG_KIND:   return "wrong kind";
	case AUTH_TOO_BIG:      return "too big";
	}
	return "unknown result";
}

static void auth_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void auth_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- keys ---- */

static int auth_key_derive(struct auth_key *k, const uint8_t master[AUTH_KEY_LEN])
{
	static const char id_msg[] = "dsrlb key id";
	uint8_t h[crypto_generichash_BYTES];

	if (crypto_generichash(h, sizeof(h), (const uint8_t *)id_msg, sizeof(id_msg) - 1,
			       master, AUTH_KEY_LEN) != 0)
		return -1;
	k->id = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	sodium_memzero(h, sizeof(h));
	if (crypto_kdf_derive_from_key(k->hb, sizeof(k->hb), AUTH_SUBKEY_ID, "dsrlb-hb", master) != 0 ||
	    crypto_kdf_derive_from_key(k->sy, sizeof(k->sy), AUTH_SUBKEY_ID, "dsrlb-sy", master) != 0) {
		sodium_memzero(k, sizeof(*k));
		return -1;
	}
	return 0;
}

struct auth_keyring *auth_keyring_from_bytes(const uint8_t keys[][AUTH_KEY_LEN], size_t n)
{
	struct auth_keyring *kr;
	size_t i;

	if (n == 0 || n > AUTH_MAX_KEYS) {
		errno = EINVAL;
		return NULL;
	}
	if (sodium_init() < 0) {
		errno = EIO;
		return NULL;
	}
	kr = calloc(1, sizeof(*kr));
	if (kr == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (auth_key_derive(&kr->keys[i], keys[i]) != 0) {
			auth_keyring_destroy(kr);
			errno = EIO;
			return NULL;
		}
	}
	kr->n = n;
	return kr;
}

void auth_keyring_destroy(struct auth_keyring *kr)
{
	if (kr == NULL)
		return;
	sodium_memzero(kr, sizeof(*kr));
	free(kr);
}

size_t auth_keyring_count(const struct auth_keyring *kr)
{
	return kr != NULL ? kr->n : 0;
}

uint32_t auth_keyring_id(const struct auth_keyring *kr, size_t i)
{
	if (kr == NULL || i >= kr->n)
		return 0;
	return kr->keys[i].id;
}

/* Reads one key file into key. Returns 0 (err may then hold a warning) or -1 with err set. */
static int auth_key_read(const char *path, gid_t reader, uint8_t key[AUTH_KEY_LEN], char *err, size_t errlen)
{
	uint8_t buf[AUTH_FILE_MAX + 1];
	struct stat st;
	size_t len = 0, bin_len = 0;
	const char *hex_end = NULL;
	ssize_t r;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		/* A daemon re-reads its keys at reload as its unprivileged user (docs/deploy.md). */
		auth_errf(err, errlen, "%s: %s%s", path, strerror(e), e == EACCES && geteuid() != 0 ?
			  " (make the key file group-readable by the daemons' group: chgrp, chmod 640)" : "");
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		auth_errf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		auth_errf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXO | S_IWGRP)) {
		auth_errf(err, errlen, "%s: mode %04o lets others read or change the key; chmod 600 it",
			  path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (len < sizeof(buf)) {
		r = read(fd, buf + len, sizeof(buf) - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			auth_errf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len == AUTH_KEY_LEN) {
		memcpy(key, buf, AUTH_KEY_LEN);
	} else if (len >= 2 * AUTH_KEY_LEN && len <= AUTH_FILE_MAX) {
		if (sodium_hex2bin(key, AUTH_KEY_LEN, (const char *)buf, 2 * AUTH_KEY_LEN, NULL,
				   &bin_len, &hex_end) != 0 || bin_len != AUTH_KEY_LEN) {
			auth_errf(err, errlen, "%s: not 64 hex digits", path);
			goto out;
		}
		if (!((len == 2 * AUTH_KEY_LEN) ||
		      (len == 2 * AUTH_KEY_LEN + 1 && buf[2 * AUTH_KEY_LEN] == '\n') ||
		      (len == 2 * AUTH_KEY_LEN + 2 && buf[2 * AUTH_KEY_LEN] == '\r' &&
		       buf[2 * AUTH_KEY_LEN + 1] == '\n'))) {
			auth_errf(err, errlen, "%s: unexpected bytes after 64 hex digits", path);
			goto out;
		}
	} else {
		auth_errf(err, errlen, "%s: wrong size (%zu%s bytes): want 64 hex digits and a newline "
			  "or 32 raw bytes", path, len, len > AUTH_FILE_MAX ? " or more" : "");
		goto out;
	}
	if (sodium_is_zero(key, AUTH_KEY_LEN)) {
		auth_errf(err, errlen, "%s: the key is all zeros", path);
		goto out;
	}
	/* Group-readable by the daemons' own group is how they re-read it after dropping root. */
	if ((st.st_mode & S_IRGRP) && st.st_gid != reader)
		auth_errf(err, errlen, "%s: readable by group %u (mode %04o); chmod 600 it, or chgrp it to the "
			  "daemons' group", path, (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
	rc = 0;
out:
	sodium_memzero(buf, sizeof(buf));
	if (rc != 0)
		sodium_memzero(key, AUTH_KEY_LEN);
	close(fd);
	return rc;
}

struct auth_keyring *auth_keyring_load(const char *const *paths, size_t n, char *err, size_t errlen)
{
	return auth_keyring_load_for(paths, n, (gid_t)-1, err, errlen);
}

struct auth_keyring *auth_keyring_load_for(const char *const *paths, size_t n, gid_t reader, char *err,
					   size_t errlen)
{
	uint8_t keys[AUTH_MAX_KEYS][AUTH_KEY_LEN];
	char warn[256] = "";
	struct auth_keyring *kr = NULL;
	size_t i;

	auth_errf(err, errlen, "%s", "");
	if (n == 0 || n > AUTH_MAX_KEYS) {
		auth_errf(err, errlen, "%zu key files given: want 1 to %d", n, AUTH_MAX_KEYS);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		char msg[256] = "";

		if (auth_key_read(paths[i], reader, keys[i], msg, sizeof(msg)) != 0) {
			auth_errf(err, errlen, "%s", msg);
			goto out;
		}
		if (msg[0] != '\0' && warn[0] == '\0')
			snprintf(warn, sizeof(warn), "%s", msg);
	}
	kr = auth_keyring_from_bytes((const uint8_t (*)[AUTH_KEY_LEN])keys, n);
	if (kr == NULL)
		auth_errf(err, errlen, "%s: %s", paths[0], strerror(errno));
	else
		auth_errf(err, errlen, "%s", warn);
out:
	sodium_memzero(keys, sizeof(keys));
	return kr;
}

int auth_keygen(const char *path, char *err, size_t errlen)
{
	uint8_t key[AUTH_KEY_LEN];
	char hex[2 * AUTH_KEY_LEN + 2];
	size_t off = 0, len;
	ssize_t w;
	int fd, saved;

	if (sodium_init() < 0) {
		auth_errf(err, errlen, "%s: libsodium failed to initialise", path);
		errno = EIO;
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0) {
		saved = errno;
		auth_errf(err, errlen, "%s: %s%s", path, strerror(saved),
			  saved == EEXIST ? " (refusing to overwrite a key)" : "");
		errno = saved;
		return -1;
	}
	randombytes_buf(key, sizeof(key));
	sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
	sodium_memzero(key, sizeof(key));
	len = 2 * AUTH_KEY_LEN;
	hex[len++] = '\n';
	/* The umask can only narrow 0600; fchmod makes sure no wider mode came from elsewhere. */
	if (fchmod(fd, 0600) != 0)
		goto fail;
	while (off < len) {
		w = write(fd, hex + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		off += (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail;
	sodium_memzero(hex, sizeof(hex));
	if (close(fd) != 0) {
		saved = errno;
		unlink(path);
		auth_errf(err, errlen, "%s: %s", path, strerror(saved));
		errno = saved;
		return -1;
	}
	return 0;
fail:
	saved = errno;
	sodium_memzero(hex, sizeof(hex));
	close(fd);
	unlink(path);
	auth_errf(err, errlen, "%s: %s", path, strerror(saved));
	errno = saved;
	return -1;
}

/* ---- sessions ---- */

static uint64_t auth_random_nonzero(void)
{
	uint64_t v;

	do
		randombytes_buf(&v, sizeof(v));
	while (v == 0);
	return v;
}

static int auth_name_ok(const char *name)
{
	size_t len;

	if (name == NULL)
		return 0;
	len = strlen(name);
	return len > 0 && len <= AUTH_NAME_MAX;
}

static void auth_name_hash(uint8_t *out, size_t outlen, const char *name)
{
	uint8_t h[crypto_generichash_BYTES];

	crypto_generichash(h, sizeof(h), (const uint8_t *)name, strlen(name), NULL, 0);
	memcpy(out, h, outlen);
}

struct auth_session *auth_session_create(const struct auth_keyring *kr, enum auth_kind kind,
					 const char *my_name, const char *peer_name)
{
	struct auth_session *s;

	if (kr == NULL || (kind != AUTH_KIND_HEARTBEAT && kind != AUTH_KIND_SYNC) ||
	    !auth_name_ok(my_name) || !auth_name_ok(peer_name) || strcmp(my_name, peer_name) == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (sodium_init() < 0) {
		errno = EIO;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->kr = kr;
	s->kind = kind;
	snprintf(s->my_name, sizeof(s->my_name), "%s", my_name);
	snprintf(s->peer_name, sizeof(s->peer_name), "%s", peer_name);
	auth_name_hash(s->my_name_hash, sizeof(s->my_name_hash), my_name);
	auth_name_hash(s->peer_name_hash, sizeof(s->peer_name_hash), peer_name);
	s->my_epoch = auth_random_nonzero();
	s->my_challenge = auth_random_nonzero();
	return s;
}

void auth_session_destroy(struct auth_session *s)
{
	if (s == NULL)
		return;
	sodium_memzero(s, sizeof(*s));
	free(s);
}

void auth_session_set_keyring(struct auth_session *s, const struct auth_keyring *kr)
{
	if (s != NULL && kr != NULL)
		s->kr = kr;
}

uint64_t auth_session_epoch(const struct auth_session *s)
{
	return s->my_epoch;
}

uint64_t auth_session_peer_epoch(const struct auth_session *s)
{
	return s->peer_epoch;
}

static const uint8_t *auth_subkey(const struct auth_key *k, enum auth_kind kind)
{
	return kind == AUTH_KIND_HEARTBEAT ? k->hb : k->sy;
}

static uint8_t *auth_put_be(uint8_t *p, uint64_t v, size_t bytes)
{
	size_t i;

	for (i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	return p + bytes;
}

static void auth_put_le64(uint8_t *p, uint64_t v)
{
	size_t i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The canonical associated data of an envelope (all fields but box). Returns its length. */
static size_t auth_ad(uint8_t ad[AUTH_AD_MAX], const Dsrlb__Envelope *env, size_t sender_len)
{
	uint8_t *p = ad;

	memcpy(p, AUTH_AD_TAG, sizeof(AUTH_AD_TAG) - 1);
	p += sizeof(AUTH_AD_TAG) - 1;
	p = auth_put_be(p, env->version, 4);
	p = auth_put_be(p, env->key_id, 4);
	p = auth_put_be(p, (uint32_t)env->kind, 4);
	p = auth_put_be(p, sender_len, 2);
	memcpy(p, env->sender, sender_len);
	p += sender_len;
	p = auth_put_be(p, env->epoch, 8);
	p = auth_put_be(p, env->counter, 8);
	p = auth_put_be(p, env->challenge, 8);
	p = auth_put_be(p, env->echo, 8);
	return (size_t)(p - ad);
}

/* nonce = kind | epoch (LE) | counter (LE) | first 7 bytes of BLAKE2b-256(sender): unique per subkey
 * while each sender's (epoch, counter) pairs are. */
static void auth_nonce(uint8_t nonce[AUTH_NONCE_LEN], enum auth_kind kind, uint64_t epoch,
		       uint64_t counter, const uint8_t *name_hash)
{
	nonce[0] = (uint8_t)kind;
	auth_put_le64(nonce + 1, epoch);
	auth_put_le64(nonce + 9, counter);
	memcpy(nonce + 17, name_hash, AUTH_NONCE_LEN - 17);
}

int auth_seal(struct auth_session *s, const uint8_t *payload, size_t len,
	      uint8_t *out, size_t cap, size_t *out_len)
{
	Dsrlb__Envelope env = DSRLB__ENVELOPE__INIT;
	const struct auth_key *k = &s->kr->keys[0];
	uint8_t ad[AUTH_AD_MAX], nonce[AUTH_NONCE_LEN];
	unsigned long long clen = 0;
	size_t adlen, sender_len = strlen(s->my_name);

	if (len > AUTH_MAX_MSG) {
		errno = EMSGSIZE;
		return -1;
	}
	if (s->my_counter == UINT64_MAX) {
		errno = EOVERFLOW;
		return -1;
	}
	env.version = AUTH_VERSION;
	env.key_id = k->id;
	env.kind = (Dsrlb__Kind)s->kind;
	env.sender = s->my_name;
	env.epoch = s->my_epoch;
	env.counter = s->my_counter + 1;
	env.challenge = s->my_challenge;
	env.echo = s->peer_challenge;
	env.box.data = s->box;
	env.box.len = len + AUTH_ABYTES;
	if (dsrlb__envelope__get_packed_size(&env) > cap) {
		errno = ENOBUFS;
		return -1;
	}
	adlen = auth_ad(ad, &env, sender_len);
	auth_nonce(nonce, s->kind, env.epoch, env.counter, s->my_name_hash);
	crypto_aead_xchacha20poly1305_ietf_encrypt(s->box, &clen, payload, len, ad, adlen,
						   NULL, nonce, auth_subkey(k, s->kind));
	s->my_counter = env.counter;
	*out_len = dsrlb__envelope__pack(&env, out);
	return 0;
}

/* Decides a verified message's fate in the accepted epoch; returns AUTH_OK or AUTH_REPLAY and, for
 * AUTH_OK, the new window in *highest and *bitmap. */
static enum auth_result auth_window(const struct auth_session *s, uint64_t counter,
				    uint64_t *highest, uint64_t *bitmap)
{
	uint64_t diff;

	if (counter > s->peer_highest) {
		diff = counter - s->peer_highest;
		*bitmap = diff >= AUTH_WINDOW ? 1 : (s->peer_bitmap << diff) | 1;
		*highest = counter;
		return AUTH_OK;
	}
	diff = s->peer_highest - counter;
	if (diff >= AUTH_WINDOW || (s->peer_bitmap & (1ull << diff)))
		return AUTH_REPLAY;
	*bitmap = s->peer_bitmap | (1ull << diff);
	*highest = s->peer_highest;
	return AUTH_OK;
}

static enum auth_result auth_open_env(struct auth_session *s, const Dsrlb__Envelope *env,
				      uint8_t *payload, size_t cap, size_t *payload_len)
{
	uint8_t ad[AUTH_AD_MAX], nonce[AUTH_NONCE_LEN], echo[8], mine[8];
	unsigned long long mlen = 0;
	uint64_t highest = 0, bitmap = 0;
	enum auth_result res = AUTH_UNKNOWN_KEY;
	size_t adlen, sender_len, i;

	if (env->version != AUTH_VERSION)
		return AUTH_MALFORMED;
	if (env->kind != (Dsrlb__Kind)s->kind)
		return AUTH_WRONG_KIND;
	if (env->sender == NULL)
		return AUTH_UNKNOWN_NODE;
	sender_len = strlen(env->sender);
	if (sender_len > AUTH_NAME_MAX || strcmp(env->sender, s->peer_name) != 0)
		return AUTH_UNKNOWN_NODE;
	if (env->epoch == 0 || env->counter == 0 || env->box.data == NULL || env->box.len < AUTH_ABYTES)
		return AUTH_MALFORMED;
	if (env->box.len - AUTH_ABYTES > AUTH_MAX_MSG || env->box.len - AUTH_ABYTES > cap)
		return AUTH_TOO_BIG;

	adlen = auth_ad(ad, env, sender_len);
	auth_nonce(nonce, s->kind, env->epoch, env->counter, s->peer_name_hash);
	/* Key ids are not secret and may collide: try every key with a matching id. */
	for (i = 0; i < s->kr->n; i++) {
		if (s->kr->keys[i].id != env->key_id)
			continue;
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(payload, &mlen, NULL, env->box.data,
							       env->box.len, ad, adlen, nonce,
							       auth_subkey(&s->kr->keys[i], s->kind)) == 0) {
			res = AUTH_OK;
			break;
		}
		res = AUTH_BAD_MAC;
	}
	if (res != AUTH_OK)
		return res;

	/* Authentic from here on; only now may the session change. */
	if (env->epoch == s->peer_epoch) {
		res = auth_window(s, env->counter, &highest, &bitmap);
		if (res == AUTH_OK) {
			s->peer_highest = highest;
			s->peer_bitmap = bitmap;
			s->peer_challenge = env->challenge;
		}
	} else {
		auth_put_be(echo, env->echo, 8);
		auth_put_be(mine, s->my_challenge, 8);
		if (sodium_memcmp(echo, mine, sizeof(mine)) == 0) {
			s->peer_epoch = env->epoch;
			/* Earlier counters of the epoch predate its proof of freshness: never accept them. */
			s->peer_highest = env->counter;
			s->peer_bitmap = UINT64_MAX;
			s->my_challenge = auth_random_nonzero();
			res = AUTH_OK;
		} else {
			res = AUTH_STALE_EPOCH;
		}
		/* An untrusted epoch's challenge is remembered only from a peer that has not heard us yet
		 * (echo 0): echoing it is how a restarted peer gets us accepted. A recording of an older
		 * epoch echoes an older challenge of ours and must not steer what we echo; neither does a
		 * replay in the accepted epoch above. (A replayed first message of an old epoch, echo 0,
		 * can still do so until the peer's next genuine message: a delay, never an acceptance.) */
		if (res == AUTH_OK || env->echo == 0)
			s->peer_challenge = env->challenge;
	}
	if (res == AUTH_OK)
		*payload_len = (size_t)mlen;
	else
		sodium_memzero(payload, (size_t)mlen);
	return res;
}

/* A ProtobufCBuffer that compares what is packed into it with the received bytes. */
struct auth_cmpbuf {
	ProtobufCBuffer base;
	const uint8_t *in;
	size_t len;
	size_t off;
	int differs;
};

static void auth_cmpbuf_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data)
{
	struct auth_cmpbuf *cb = (struct auth_cmpbuf *)buffer;

	if (cb->differs || len > cb->len - cb->off || memcmp(cb->in + cb->off, data, len) != 0) {
		cb->differs = 1;
		return;
	}
	cb->off += len;
}

/* Whether in is exactly how protobuf-c encodes env. Only the canonical encoding is accepted, so a
 * message has one wire form: no overlong varints, unknown or repeated fields, or names with a NUL,
 * which would otherwise decode to the same authenticated values from different bytes. */
static int auth_canonical(const Dsrlb__Envelope *env, const uint8_t *in, size_t len)
{
	struct auth_cmpbuf cb = { .base.append = auth_cmpbuf_append, .in = in, .len = len };

	/* protobuf-c keeps unknown fields and packs them back: refuse them explicitly. */
	if (env->base.n_unknown_fields != 0)
		return 0;
	dsrlb__envelope__pack_to_buffer(env, &cb.base);
	return !cb.differs && cb.off == len;
}

enum auth_result auth_open(struct auth_session *s, const uint8_t *in, size_t len,
			   uint8_t *payload, size_t cap, size_t *payload_len)
{
	Dsrlb__Envelope *env;
	enum auth_result res;

	*payload_len = 0;
	if (len > AUTH_MAX_ENVELOPE)
		return AUTH_TOO_BIG;
	env = dsrlb__envelope__unpack(NULL, len, in);
	if (env == NULL)
		return AUTH_MALFORMED;
	if (auth_canonical(env, in, len))
		res = auth_open_env(s, env, payload, cap, payload_len);
	else
		res = AUTH_MALFORMED;
	dsrlb__envelope__free_unpacked(env, NULL);
	return res;
}
