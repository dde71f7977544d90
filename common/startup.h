/* The start-up both daemons share: the command line (-c, -n, --run-dir, -f, -d, -t, --help, and lbd's
 * --standalone), the config and its key files, and `-t` (check the config and exit). */
#ifndef DSR_STARTUP_H
#define DSR_STARTUP_H

#include <stddef.h>
#include <sys/types.h>

#include "auth.h"
#include "config.h"

#define STARTUP_DEFAULT_CONFIG "/etc/dsrlb/dsrlb.conf"
#define STARTUP_DEFAULT_RUN_DIR "/run/dsrlb"

struct startup_args {
	const char *prog;               /* "lbd" or "vrrpd" */
	const char *cfg_path;
	const char *node;               /* NULL: the node whose address is on this host */
	const char *run_dir;
	int foreground, debug, test;
	int standalone;                 /* lbd only */
};

/* Parses the command line; prints the usage and exits 0 for --help, 2 for a usage error. */
void startup_args(struct startup_args *a, const char *prog, int with_standalone, int argc, char **argv);

/* Loads the config and its key files; a problem with either is printed and exits 1. With -t, prints
 * "FILE: ok" and exits 0. Returns the config and, in *keys, the keyring (both the caller's), and in
 * *uid, *gid who the daemon will run as (config `user`, privs_target). */
struct cfg *startup_load(const struct startup_args *a, struct auth_keyring **keys, uid_t *uid, gid_t *gid);

/* The key files a config names, as one keyring (also at reload); NULL with err set. A warning (say, a
 * key file readable by others than `reader`, the daemons' group) comes back in err with a keyring. */
/* Log what is valid but almost certainly a mistake (every backend of a service at weight 0). */
void startup_warn_config(const struct cfg *cfg);
struct auth_keyring *startup_keys(const struct cfg *cfg, gid_t reader, char *err, size_t errlen);

#endif
