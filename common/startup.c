/* The start-up both daemons share (startup.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "privs.h"
#include "startup.h"

static void startup_usage(FILE *out, const char *prog, int with_standalone)
{
	fprintf(out,
		"usage: %s [-c FILE] [-n NODE] [--run-dir DIR] [-f] [-d]%s\n"
		"       %s -t [-c FILE]\n"
		"  -c, --config FILE   cluster config (docs/config.md; default " STARTUP_DEFAULT_CONFIG ")\n"
		"  -n, --node NODE     node to run as (default: the node whose address is on this host)\n"
		"      --run-dir DIR   directory of the control sockets (default " STARTUP_DEFAULT_RUN_DIR ")\n"
		"  -f, --foreground    stay in the foreground, log to stderr\n"
		"  -d, --debug         debug logging\n"
		"%s"
		"  -t, --test          check the config and its key files, and exit\n"
		"      --version       print the version and exit\n",
		prog, with_standalone ? " [--standalone]" : "", prog,
		with_standalone ? "      --standalone    a single always-active node (no vrrpd)\n" : "");
}

void startup_args(struct startup_args *a, const char *prog, int with_standalone, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "run-dir", required_argument, NULL, 'R' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "standalone", no_argument, NULL, 'S' },
		{ "test", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*a = (struct startup_args){ .prog = prog, .cfg_path = STARTUP_DEFAULT_CONFIG,
				    .run_dir = STARTUP_DEFAULT_RUN_DIR };
	while ((c = getopt_long(argc, argv, "c:n:fdthV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': a->cfg_path = optarg; break;
		case 'n': a->node = optarg; break;
		case 'R': a->run_dir = optarg; break;
		case 'f': a->foreground = 1; break;
		case 'd': a->debug = 1; break;
		case 'S':
			if (!with_standalone)
				goto bad;
			a->standalone = 1;
			break;
		case 't': a->test = 1; break;
		case 'h': startup_usage(stdout, prog, with_standalone); exit(0);
		case 'V': printf("%s (dsrlb) %s\n", prog, DSRLB_VERSION); exit(0);
		default: goto bad;
		}
	}
	if (optind == argc)
		return;
bad:
	startup_usage(stderr, prog, with_standalone);
	exit(2);
}

/* A key file that cannot be used is reported at the config line that names it. */
struct auth_keyring *startup_keys(const struct cfg *cfg, gid_t reader, char *err, size_t errlen)
{
	struct auth_keyring *kr;
	char msg[400];
	size_t i;

	kr = auth_keyring_load_for((const char *const[]){ cfg->key_files[0], cfg->key_files[1] },
				   cfg->n_key_files, reader, err, errlen);
	if (kr)
		return kr;
	for (i = 0; i < cfg->n_key_files; i++) {
		struct auth_keyring *one = auth_keyring_load_for((const char *const[]){ cfg->key_files[i] }, 1,
								 reader, msg, sizeof(msg));
		if (one) {
			auth_keyring_destroy(one);
			continue;
		}
		snprintf(err, errlen, "%s:%d: key_file: %s", cfg->path, cfg->key_file_lines[i], msg);
		break;
	}
	return NULL;
}

/* What is valid but almost certainly not meant: said at start-up, at reload and by -t. */
void startup_warn_config(const struct cfg *cfg)
{
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct cfg_service *svc = &cfg->services[i];
		size_t j;

		for (j = 0; j < svc->n_backends && svc->backends[j].weight == 0; j++)
			;
		if (svc->n_backends && j == svc->n_backends)
			log_warn("%s:%d: [service %s]: every backend has weight 0: the service takes no new flows",
				 cfg->path, svc->line, svc->name);
	}
}

struct cfg *startup_load(const struct startup_args *a, struct auth_keyring **keys, uid_t *uid, gid_t *gid)
{
	char err[512] = "";
	struct cfg *cfg = cfg_load(a->cfg_path, err, sizeof(err));

	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	privs_target(cfg, uid, gid, !a->test);
	*keys = startup_keys(cfg, *gid, err, sizeof(err));
	if (!*keys) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	if (err[0])
		log_warn("%s", err);
	startup_warn_config(cfg);
	if (a->test) {
		printf("%s: ok\n", a->cfg_path);
		exit(0);
	}
	return cfg;
}
