/* lbd: the DSR forwarding engine. Start-up (config, rings, control socket, capability drop), the
 * libev loop with its timers and signals, live reload, and shutdown. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <sys/resource.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "auth.h"
#include "ipc.h"
#include "kdrop.h"
#include "lbd.h"
#include "log.h"
#include "privs.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: lbd -c FILE [-n NODE] [--run-dir DIR] [-f] [-d] [--standalone]\n"
		"       lbd -t -c FILE\n"
		"  -c, --config FILE   cluster config (docs/config.md)\n"
		"  -n, --node NODE     node to run as (default: the node whose address is on this host)\n"
		"      --run-dir DIR   directory of the control sockets (default /run/dsrlb)\n"
		"  -f, --foreground    stay in the foreground, log to stderr\n"
		"  -d, --debug         debug logging\n"
		"      --standalone    a single always-active node (no vrrpd)\n"
		"  -t, --test          check the config and exit\n");
}

static int lbd_load_filter(struct lbd *l)
{
	struct sock_filter prog[256];
	size_t n = filter_build(l->vips, l->n_vips, prog, 256);

	if (!n) {
		log_err("%s: too many VIPs for the packet filter", __func__);
		return -1;
	}
	for (unsigned i = 0; i < l->n_workers; i++)
		if (ring_set_filter(l->workers[i].ring, prog, n) < 0)
			return -1;
	return 0;
}

int lbd_reload(struct lbd *l, char *err, size_t errlen)
{
	struct cfg *cfg = cfg_load(l->cfg_path, err, errlen);

	if (!cfg)
		goto fail;
	/* The key files are part of the config: a missing or unsafe one refuses the whole reload. */
	struct auth_keyring *keys = auth_keyring_load((const char *const[]){ cfg->key_files[0], cfg->key_files[1] },
						      cfg->n_key_files, err, errlen);
	if (!keys) {
		cfg_free(cfg);
		goto fail;
	}
	err[0] = 0;
	if (strcmp(cfg->interface, l->cfg->interface) != 0 || cfg->flow_max != l->cfg->flow_max ||
	    cfg->workers != l->cfg->workers) {
		snprintf(err, errlen, "%s: interface, flow_max and workers change only on restart", l->cfg_path);
		cfg_free(cfg);
		auth_keyring_destroy(keys);
		goto fail;
	}
	if (!cfg_find_node(cfg, l->node, err, errlen)) {
		cfg_free(cfg);
		auth_keyring_destroy(keys);
		goto fail;
	}
	dp_write_lock(l);
	int applied = dp_apply_config(l, cfg);
	dp_write_unlock(l);
	if (applied < 0) {
		snprintf(err, errlen, "cannot apply the new config");
		cfg_free(cfg);
		auth_keyring_destroy(keys);
		goto fail;
	}
	lbd_load_filter(l);
	if (l->cfg->kernel_drop)
		kdrop_install(l->cfg->interface, l->mac, l->vips, l->n_vips);
	else
		kdrop_remove();
	health_reload(l->health);
	l->arp_fast_until_ms = clock_ms() + 2000;
	l->arp_timer.repeat = 0.001;
	ev_timer_again(l->loop, &l->arp_timer);
	if (l->sync)
		sync_reload(l->sync, keys);
	else
		auth_keyring_destroy(keys);
	l->reloads++;
	l->last_reload_error[0] = 0;
	log_info("config reloaded from %s", l->cfg_path);
	return 0;
fail:
	snprintf(l->last_reload_error, sizeof(l->last_reload_error), "%s", err);
	log_err("reload refused, keeping the running config: %s", err);
	return -1;
}

static void lbd_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct lbd *l = w->data;
	char err[300];

	if (w->signum == SIGHUP) {
		lbd_reload(l, err, sizeof(err));
		return;
	}
	mode_stop(l, w->signum);
}

static void lbd_warn_forwarding(const struct lbd *l)
{
	char path[128], v = '0';
	FILE *f;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/forwarding", l->cfg->interface);
	if ((f = fopen(path, "r"))) {
		if (fread(&v, 1, 1, f) == 1 && v != '0')
			log_warn("IPv4 forwarding is on for %s: the kernel would route VIP frames a second time; "
				 "turn it off on the balancer's LAN interface (docs/deploy.md)", l->cfg->interface);
		fclose(f);
	}
}

/* Opens everything that needs privileges: the workers' rings, the ARP socket, the control socket. */
static int lbd_start(struct lbd *l)
{
	struct ring_params rp = {
		.ifname = l->cfg->interface,
		.rx_version = l->cfg->rx_ring_version == 2 ? TPACKET_V2 : TPACKET_V3,
		.rx_frame_nr = 1024,
		.rx_block_size = 1u << 18,
		.rx_block_nr = 16,
		.rx_timeout_ms = 1,
		.tx_frame_nr = 256,
	};
	struct sock_filter prog[256];

	rp.filter = prog;
	rp.filter_len = filter_build(l->vips, l->n_vips, prog, 256);
	if (worker_create_all(l, &rp) < 0)
		return -1;
	memcpy(l->mac, ring_mac(l->workers[0].ring), 6);
	l->ifindex = ring_ifindex(l->workers[0].ring);
	if (arp_open(l) < 0)
		return -1;
	if (mkdir(l->run_dir, 0755) < 0 && errno != EEXIST) {
		log_err("run dir %s: %s", l->run_dir, strerror(errno));
		return -1;
	}
	if (ctl_open(l) < 0)
		return -1;

	ev_init(&l->arp_timer, arp_refresh_cb);
	l->arp_timer.data = l;
	l->arp_timer.repeat = 0.001;
	l->arp_fast_until_ms = clock_ms() + 2000;
	ev_timer_again(l->loop, &l->arp_timer);
	mode_init(l);
	l->health = health_create(l);
	if (!l->health)
		return -1;
	if (l->cfg->sync && !(l->sync = sync_create(l)) && cfg_peer(l->cfg, cfg_find_node(l->cfg, l->node, NULL, 0)))
		log_warn("connection sync with the peer is not running");

	ev_signal_init(&l->sig_int, lbd_signal_cb, SIGINT);
	ev_signal_init(&l->sig_term, lbd_signal_cb, SIGTERM);
	ev_signal_init(&l->sig_hup, lbd_signal_cb, SIGHUP);
	l->sig_int.data = l->sig_term.data = l->sig_hup.data = l;
	ev_signal_start(l->loop, &l->sig_int);
	ev_signal_start(l->loop, &l->sig_term);
	ev_signal_start(l->loop, &l->sig_hup);
	lbd_warn_forwarding(l);
	if (l->cfg->kernel_drop && kdrop_install(l->cfg->interface, l->mac, l->vips, l->n_vips) < 0)
		log_warn("could not install the nftables rule that keeps the local stack off VIP frames; "
			 "forwarding works, at a higher CPU cost per frame");
	return 0;
}

static void lbd_stop(struct lbd *l)
{
	l->stopping = 0;
	if (l->active)
		mode_set(l, 0, l->reason, 0, 0, 0);
	ev_timer_stop(l->loop, &l->release_timer);
	ev_timer_stop(l->loop, &l->stop_timer);
	ctl_close(l);
	if (l->cfg->kernel_drop)
		kdrop_remove();
	health_destroy(l->health);
	l->health = NULL;
	/* Workers first (they queue for sync), then sync (it drains their queues), then their memory. */
	worker_stop_all(l);
	sync_destroy(l->sync);
	l->sync = NULL;
	worker_destroy_all(l);
	arp_close(l);
	for (size_t i = 0; i < l->n_services; i++)
		maglev_destroy(l->services[i].mg);
	cfg_free(l->cfg);
}

int main(int argc, char **argv)
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
		{ NULL, 0, NULL, 0 },
	};
	static struct lbd l;
	const char *cfg_path = NULL, *node = NULL, *run_dir = "/run/dsrlb";
	int fg = 0, debug = 0, test = 0, c;
	char err[512];
	const struct cfg_node *self;
	struct cfg *cfg;

	while ((c = getopt_long(argc, argv, "c:n:fdth", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg_path = optarg; break;
		case 'n': node = optarg; break;
		case 'R': run_dir = optarg; break;
		case 'f': fg = 1; break;
		case 'd': debug = 1; break;
		case 'S': l.standalone = 1; break;
		case 't': test = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!cfg_path || optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("lbd", fg || test, debug);
	cfg = cfg_load(cfg_path, err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* The key is needed by connection sync; a missing or unsafe key file is a config error. */
	struct auth_keyring *keys = auth_keyring_load((const char *const[]){ cfg->key_files[0], cfg->key_files[1] },
						      cfg->n_key_files, err, sizeof(err));
	if (!keys) {
		fprintf(stderr, "%s\n", err);
		cfg_free(cfg);
		return 1;
	}
	if (err[0])
		log_warn("%s", err);
	auth_keyring_destroy(keys);
	if (test) {
		printf("%s: ok\n", cfg_path);
		cfg_free(cfg);
		return 0;
	}
	self = cfg_find_node(cfg, node, err, sizeof(err));
	if (!self) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	snprintf(l.node, sizeof(l.node), "%s", self->name);
	l.node_addr = self->addr.s_addr;
	snprintf(l.cfg_path, sizeof(l.cfg_path), "%s", cfg_path);
	snprintf(l.run_dir, sizeof(l.run_dir), "%s", run_dir);
	if (!fg && daemon(0, 0) < 0)
		fatal("daemon: %s", strerror(errno));
	l.loop = ev_default_loop(EVFLAG_AUTO);
	l.start_ms = clock_ms();
	l.ctl_tx_fd = -1;
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	/* Writers are rare and short; they must not starve behind a steady stream of worker batches. */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&l.dp_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	if (dp_apply_config(&l, cfg) < 0)
		fatal("cannot apply the config");
	if (lbd_start(&l) < 0)
		fatal("start-up failed");
	if (l.cfg->realtime) {
		/* A raised nice level, not a real-time class: a real-time forwarder at full load trips the
		 * kernel's real-time throttling, which then stalls vrrpd (SCHED_FIFO) too and risks a false
		 * failover. vrrpd keeps priority over forwarding either way. */
		if (setpriority(PRIO_PROCESS, 0, -10) < 0)
			log_warn("nice level: %s", strerror(errno));
	}
	if (privs_keep_only(1ull << CAP_NET_RAW | 1ull << CAP_NET_ADMIN) < 0)
		log_warn("could not drop capabilities; continuing with full privileges");
	/* Threads inherit the scheduling class and the reduced capabilities. */
	if (worker_start_all(&l) < 0)
		fatal("cannot start the forwarding workers");
	log_info("node %s on %s, %zu services, %zu VIPs, %u worker(s), flow table %u flows x %zu bytes", l.node,
		 l.cfg->interface, l.n_services, l.n_vips, l.n_workers, flow_max(l.workers[0].flows) * l.n_workers,
		 flow_bytes_per_flow(l.workers[0].flows));
	if (l.standalone)
		mode_set(&l, 1, LBD_REASON_STANDALONE, 0, 0, 0);
	ev_run(l.loop, 0);
	lbd_stop(&l);
	log_info("stopped");
	return 0;
}
