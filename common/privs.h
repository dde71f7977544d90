/* Privilege drop shared by both daemons: become the configured user, keep only the capabilities still
 * needed, no_new_privs (docs/deploy.md, "Privileges"). */
#ifndef DSR_PRIVS_H
#define DSR_PRIVS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

/* 0 when the process runs as root; else -1 with a message for the operator on stderr. */
int privs_check_root(const char *prog);

/* The uid and gid to run as: the config's `user`, else CFG_DEFAULT_USER when that account exists
 * (0), else root (1; with warn, a warning is logged: the capability drop alone). */
int privs_target(const struct cfg *cfg, uid_t *uid, gid_t *gid, int warn);

/* Becomes uid:gid (gid the only group) unless uid is 0, and keeps only `keep` (1ull << CAP_...) in
 * the permitted, effective and bounding sets, with empty inheritable and ambient sets and
 * no_new_privs set; then reads it all back. Call before any thread starts (capabilities are per
 * thread). 0, or -1 (logged): the caller must not go on. */
int privs_drop(uid_t uid, gid_t gid, uint64_t keep);

/* Creates the control sockets' directory (mode 0755: anyone may connect, the daemon judges) if it is
 * missing. 0, or -1 (logged). */
int privs_run_dir(const char *dir);

/* Once the daemon's socket sock is bound in dir: makes uid its owner (vrrpd, the same user, connects
 * to lbd's), and lets gid write to dir so the daemon can remove its socket at exit; a dir holding
 * anything else, or shared (/tmp), stays as it is (warning logged). Nothing to do for uid 0.
 * 0, or -1 (logged). */
int privs_hand_over(const char *dir, const char *sock, uid_t uid, gid_t gid);

/* privs_drop, then a log line saying who the daemon now is, and a warning for each file a reload
 * re-reads (config, keys) that uid cannot read. 0, or -1 (logged). */
int privs_become(const struct cfg *cfg, uid_t uid, gid_t gid, uint64_t keep);

/* "CAP_NET_ADMIN", "none", ... for log lines. */
const char *privs_caps_str(uint64_t caps, char *buf, size_t len);

#endif
