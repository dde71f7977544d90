/* The authenticated, replay-protected envelope around every message between the two nodes: heartbeats
 * between the vrrpd's and connection sync between the lbd's. XChaCha20-Poly1305 with per-kind subkeys of
 * the cluster key; replay protection by counters, per-start epochs and echoed challenges (see auth.c). */
#ifndef DSR_AUTH_H
#define DSR_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AUTH_KEY_LEN   32
#define AUTH_MAX_KEYS  2          /* the current key and, during a rotation, one more */
#define AUTH_NAME_MAX  63         /* longest node name, without the NUL */
#define AUTH_MAX_MSG   65000      /* largest payload */
/* An envelope is at most the payload plus this much; AUTH_MAX_MSG + AUTH_OVERHEAD fits one UDP datagram. */
#define AUTH_OVERHEAD  192
#define AUTH_MAX_ENVELOPE (AUTH_MAX_MSG + AUTH_OVERHEAD)

enum auth_kind { AUTH_KIND_HEARTBEAT = 1, AUTH_KIND_SYNC = 2 };

enum auth_result {
	AUTH_OK,
	AUTH_MALFORMED,      /* not an envelope, wrong version, missing or short box, zero epoch/counter */
	AUTH_UNKNOWN_KEY,    /* key_id matches no configured key */
	AUTH_BAD_MAC,        /* forged, tampered, or sealed with another key or subkey */
	AUTH_REPLAY,         /* duplicate, or older than the window, in the accepted epoch */
	AUTH_STALE_EPOCH,    /* new epoch that has not echoed our challenge (yet): not trusted */
	AUTH_UNKNOWN_NODE,   /* sender is not this session's peer */
	AUTH_WRONG_KIND,     /* a heartbeat in a sync session or the reverse */
	AUTH_TOO_BIG,        /* envelope or payload larger than AUTH_MAX_MSG, or than the caller's buffer */
};

const char *auth_result_str(enum auth_result r);

/* Up to AUTH_MAX_KEYS master keys, each with its id and derived subkeys. The first seals; any opens. */
struct auth_keyring;

/* Loads 1..AUTH_MAX_KEYS key files: 64 hex digits and a newline (as `lbctl keygen` writes them) or exactly
 * 32 raw bytes. Refuses files that are not regular, are world-accessible or group-writable, or hold an
 * all-zero key. On error returns NULL and writes a message naming the file into err; on success err is
 * empty or holds a warning for the caller to log (group-readable file). */
struct auth_keyring *auth_keyring_load(const char *const *paths, size_t n, char *err, size_t errlen);
/* The same, with no warning for a file readable by group `reader` (the daemons' own group, which
 * re-reads it at reload after dropping root). */
struct auth_keyring *auth_keyring_load_for(const char *const *paths, size_t n, gid_t reader, char *err,
					   size_t errlen);
struct auth_keyring *auth_keyring_from_bytes(const uint8_t keys[][AUTH_KEY_LEN], size_t n);
void auth_keyring_destroy(struct auth_keyring *kr);
size_t auth_keyring_count(const struct auth_keyring *kr);
/* The public 32-bit id of key i (sent in every envelope); 0 if i is out of range. */
uint32_t auth_keyring_id(const struct auth_keyring *kr, size_t i);

/* Writes a new random key to path as hex, mode 0600; refuses to overwrite an existing file. */
int auth_keygen(const char *path, char *err, size_t errlen);

/* One direction pair with one peer for one kind. The session borrows the keyring: it must outlive the
 * session or be replaced first with auth_session_set_keyring(). Names must differ (both nodes share the
 * key, so the sender name is what stops a node's own messages being reflected back to it). */
struct auth_session;

struct auth_session *auth_session_create(const struct auth_keyring *kr, enum auth_kind kind,
					 const char *my_name, const char *peer_name);
void auth_session_destroy(struct auth_session *s);
/* Keeps epochs, counters and challenges: a key rotation does not restart the handshake. */
void auth_session_set_keyring(struct auth_session *s, const struct auth_keyring *kr);

/* Seals payload into out as an envelope. Returns 0, or -1 with errno EMSGSIZE (len > AUTH_MAX_MSG),
 * ENOBUFS (cap too small) or EOVERFLOW (counter exhausted). payload and out must not overlap. */
int auth_seal(struct auth_session *s, const uint8_t *payload, size_t len,
	      uint8_t *out, size_t cap, size_t *out_len);

/* Verifies and decrypts in into payload and applies the replay rules. Only AUTH_OK yields a payload
 * (*payload_len is 0 otherwise). Nothing in s changes unless the MAC verified. */
enum auth_result auth_open(struct auth_session *s, const uint8_t *in, size_t len,
			   uint8_t *payload, size_t cap, size_t *payload_len);

uint64_t auth_session_epoch(const struct auth_session *s);       /* mine */
uint64_t auth_session_peer_epoch(const struct auth_session *s);  /* 0 if none accepted yet */

#endif
