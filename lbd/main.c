/* lbd: the DSR forwarding engine. Start-up (config, rings, control socket, capability drop), the
 * libev loop with its timers and signals, live reload, and shutdown. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <sched.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "announce.h"
#include "clock.h"
#include "auth.h"
#include "ipc.h"
#include "kdrop.h"
#include "lbd.h"
#include "log.h"
#include "privs.h"
#include "sdnotify.h"
#include "startup.h"

static void lbd_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct lbd *l = w->data;
	char err[300];

	if (w->signum == SIGHUP) {
		lbd_reload(l, err, sizeof(err));
		return;
	}
	if (l->announce)
		announce_stop(l->announce, w->signum);
	else
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
	struct sock_filter prog[LBD_FILTER_MAX];

	rp.filter = prog;
	rp.filter_len = filter_build(l->vips, l->n_vips, prog, LBD_FILTER_MAX);
	if (worker_create_all(l, &rp) < 0)
		return -1;
	memcpy(l->mac, ring_mac(l->workers[0].ring), 6);
	l->ifindex = ring_ifindex(l->workers[0].ring);
	/* The device the announced routes point at: created now, while root; lbd holds it to the end. */
	if (l->cfg->mode == CFG_MODE_ECMP && !(l->announce = announce_open(l)))
		return -1;
	if (arp_open(l) < 0)
		return -1;
	char sock[PATH_MAX + 16];
	snprintf(sock, sizeof(sock), "%s/lbd.sock", l->run_dir);
	if (privs_run_dir(l->run_dir) < 0 || ctl_open(l) < 0 || privs_hand_over(l->run_dir, sock, l->uid, l->gid) < 0)
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
	if (l->cfg->kernel_drop && kdrop_install(l->kdrop, l->vips, l->n_vips) < 0)
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
	announce_close(l->announce);
	l->announce = NULL;
	if (l->cfg->kernel_drop)
		kdrop_remove(l->kdrop);
	kdrop_destroy(l->kdrop);
	l->kdrop = NULL;
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

/* STATUS= for systemd: the role, as `lbctl status` names it. */
static void lbd_status_text(void *ctx, char *buf, size_t len)
{
	const struct lbd *l = ctx;

	if (l->cfg->mode == CFG_MODE_ECMP)
		snprintf(buf, len, "ecmp: %s%s", l->announced ? "announced" : "not announced: ",
			 l->announced ? "" : l->announce_why);
	else if (l->stopping)
		snprintf(buf, len, "stopping: forwarding until the peer has the VIPs");
	else if (l->active)
		snprintf(buf, len, "active (%s)%s", mode_reason_str(l->reason), l->owner ? ", owns the VIPs" : "");
	else
		snprintf(buf, len, "standby (%s)", mode_reason_str(l->reason));
}

#define LBD_READY_WAIT_MS 1000       /* longest wait for backend MACs before READY=1 */

static struct sdnotify sdn;

/* READY=1 once lbd can forward: every backend's MAC resolved (the first ARP round), or after
 * LBD_READY_WAIT_MS for backends that do not answer. */
static void lbd_ready_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lbd *l = t->data;
	size_t i, unresolved = 0;

	for (i = 0; i < LBD_MAX_SLOTS; i++)
		unresolved += !ipaddr_is_none(&l->slots[i].addr) && !l->slots[i].mac_known;
	if (unresolved && clock_ms() - l->start_ms < LBD_READY_WAIT_MS)
		return;
	ev_timer_stop(loop, t);
	sdnotify_ready(&sdn, loop, lbd_status_text, l);
}

/* The interface's IPv6 link-local address: the source of our Neighbour Solicitations when the node's
 * own address is IPv4 (RFC 4861 allows any of the interface's addresses). None if it has none. */
/* The interface's address of the family the node's own address is not of, to resolve that family's
 * backends from: its IPv6 link-local address (Neighbour Solicitations), or its first IPv4 address (ARP
 * requests). Left as it is when the interface has none. */
static void lbd_if_addr(const char *ifname, int family, struct ipaddr *out)
{
	struct ifaddrs *ifa, *i;

	if (getifaddrs(&ifa) < 0)
		return;
	for (i = ifa; i; i = i->ifa_next) {
		struct ipaddr a;
		if (!i->ifa_addr || i->ifa_addr->sa_family != family || strcmp(i->ifa_name, ifname) != 0 ||
		    ipaddr_from_sockaddr(i->ifa_addr, &a, NULL) < 0)
			continue;
		if (family == AF_INET || (a.b[0] == 0xfe && (a.b[1] & 0xc0) == 0x80)) {
			*out = a;
			break;
		}
	}
	freeifaddrs(ifa);
}

int main(int argc, char **argv)
{
	static struct lbd l;
	ev_timer ready_timer;
	struct startup_args a;
	struct auth_keyring *keys;
	char err[512];
	const struct cfg_node *self;
	struct cfg *cfg;

	startup_args(&a, "lbd", 1, argc, argv);
	log_init("lbd", a.foreground || a.test, a.debug);
	sdnotify_open(&sdn);
	/* The key is needed by connection sync (which loads it itself); a bad key file is a config error. */
	cfg = startup_load(&a, &keys, &l.uid, &l.gid);
	auth_keyring_destroy(keys);
	l.standalone = a.standalone;
	self = cfg_find_node(cfg, a.node, err, sizeof(err));
	if (!self) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (privs_check_root("lbd") < 0)
		return 1;
	snprintf(l.node, sizeof(l.node), "%s", self->name);
	if (ipaddr_is_v4(&self->addr))
		l.node_addr = ipaddr_v4(&self->addr);
	else
		l.node_addr6 = self->addr;
	if (ipaddr_is_none(&l.node_addr6))
		lbd_if_addr(cfg->interface, AF_INET6, &l.node_addr6);
	if (!l.node_addr) {
		struct ipaddr v4 = { 0 };
		lbd_if_addr(cfg->interface, AF_INET, &v4);
		if (ipaddr_is_v4(&v4))
			l.node_addr = ipaddr_v4(&v4);
	}
	snprintf(l.cfg_path, sizeof(l.cfg_path), "%s", a.cfg_path);
	snprintf(l.run_dir, sizeof(l.run_dir), "%s", a.run_dir);
	if (!a.foreground && daemon(0, 0) < 0)
		fatal("daemon: %s", strerror(errno));
	/* The helper first, while lbd holds nothing it should not inherit. */
	if (!(l.kdrop = kdrop_create(cfg, l.uid, l.gid)))
		log_warn("no nftables helper: the rule that keeps the local stack off VIP frames cannot be set");
	l.loop = ev_default_loop(EVFLAG_AUTO);
	l.start_ms = clock_ms();
	l.ctl_tx_fd = -1;
	snprintf(l.announce_why, sizeof(l.announce_why), "mode = pair: the VIPs move by ARP");
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
	/* Every socket and ring is open: lbd needs no capability from here on (the nftables helper keeps
	 * CAP_NET_ADMIN for itself). Threads inherit the user, the empty sets and the scheduling class. */
	if (privs_become(l.cfg, l.uid, l.gid, 0) < 0)
		fatal("cannot drop privileges");
	if (worker_start_all(&l) < 0)
		fatal("cannot start the forwarding workers");
	log_info("node %s on %s, %zu services, %zu VIPs, %u worker(s), flow table %u flows x %zu bytes", l.node,
		 l.cfg->interface, l.n_services, l.n_vips, l.n_workers, flow_max(l.workers[0].flows) * l.n_workers,
		 flow_bytes_per_flow(l.workers[0].flows));
	if (l.cfg->mode == CFG_MODE_ECMP) {
		if (l.standalone)
			log_warn("--standalone changes nothing in mode = ecmp: lbd forwards without vrrpd anyway");
		l.standalone = 0;
		mode_ecmp(&l);
		announce_start(l.announce);
	} else if (l.standalone) {
		mode_set(&l, 1, LBD_REASON_STANDALONE, 0, 0, 0);
	}
	/* Rings, workers, sockets and the first config are up: READY=1 once the backends are resolved. */
	ev_timer_init(&ready_timer, lbd_ready_cb, 0, 0.01);
	ready_timer.data = &l;
	ev_timer_start(l.loop, &ready_timer);
	ev_run(l.loop, 0);
	ev_timer_stop(l.loop, &ready_timer);
	sdnotify_send(&sdn, "STOPPING=1");
	sdnotify_close(&sdn, l.loop);
	lbd_stop(&l);
	log_info("stopped");
	return 0;
}
