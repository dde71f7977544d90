/* The lbd daemon's one context struct, shared by its modules: the config in force, the services and
 * backend slots the forwarding path reads, the forwarding workers with their rings and connection
 * tables, the active/standby mode, the control socket and the timers.
 *
 * Threads and locks. The main thread runs the control plane (control socket, ARP resolution, health
 * checks, sync, timers) and is the only writer of the shared data-plane state (services, slots, VIPs,
 * mode); it writes under `dp_lock` held for writing. Each worker thread (worker.c) owns a ring pair and
 * its part of the connection table; for each batch of frames it holds `dp_lock` for reading and its own
 * `lock`, and hands the frames to fwd.c, which takes no lock. The main thread takes a worker's `lock`
 * (after `dp_lock`, never before) to read or change that worker's table and counters (worker_lock), and
 * a busy worker lets it in first rather than take the lock straight back. So there is one uncontended
 * lock pair per batch and none per frame. Who calls whom: docs/ARCHITECTURE.md, "lbd: the files". */
#ifndef DSR_LBD_H
#define DSR_LBD_H

#include <ev.h>
#include <pthread.h>
#include <stdint.h>

#include "config.h"
#include "flow.h"
#include "maglev.h"
#include "ring.h"
#include "sync.h"
#include "frag.h"
#include "health.h"
#include "spsc.h"

#define LBD_MAX_SLOTS 4096          /* backend slots; flows name their backend by slot */
#define LBD_NO_SLOT 0xffffu
#define LBD_MAX_VIPS CFG_MAX_SERVICES
#define LBD_FILTER_MAX 1024         /* RX filter instructions: 24 + 1 per IPv4 VIP + 9 per IPv6 VIP */
#define LBD_FLOW_DIRTY 0x01             /* flow flag: used since its last sync refresh */

/* Counters of the forwarding and control paths; lbctl shows them by these names. */
struct lbd_counters {
	uint64_t rx_frames, forwarded, tx_bytes;
	uint64_t drop_standby, drop_no_service, drop_no_backend, drop_malformed;
	uint64_t drop_not_ipv4;          /* neither IPv4 nor IPv6 (the name is kept for the dashboards) */
	uint64_t drop_ipv6_ext;          /* IPv6 with a malformed, misplaced or deprecated extension chain */
	uint64_t drop_other;             /* IP to an address that is no VIP; an ICMP error of no known flow */
	uint64_t drop_vlan;              /* VLAN-tagged frames */
	uint64_t drop_not_for_us;        /* IP to a VIP, but to another host's MAC */
	uint64_t arp_replies, garp_sent, icmp_echo_replies, icmp_errors_forwarded, fragments;
	uint64_t flow_table_full, flows_created, flows_expired, flows_rescheduled;
	uint64_t nd_adverts_sent;        /* Neighbour Advertisements answering solicitations for an IPv6 VIP */
	uint64_t unsolicited_na_sent;    /* unsolicited NAs for the IPv6 VIPs (takeover, refresh) */
	uint64_t stale_mode_refused;     /* vrrpd's SET_MODE active older than its fence, refused */
	uint64_t backend_arp_for_vip;    /* a backend answering ARP or NDP for a VIP */
	uint64_t arp_requests_sent;      /* ARP requests and Neighbour Solicitations for backends and VIPs */
	uint64_t arp_mac_changes;        /* a known backend's MAC replaced (arp_mac_judge) */
	uint64_t arp_mac_refused;        /* ARP claiming another MAC for a backend whose MAC is still heard */
	uint64_t maglev_rebuilds;        /* lookup tables built (dp_rebuild_service) */
	uint64_t sync_dropped;           /* updates a worker could not queue */
	uint64_t frag_unmatched;         /* later fragments dropped: first one unseen, several services fit */
	uint64_t vip_frames;             /* IP frames to a VIP and to our MAC: the routers still send */
};

struct lbd_backend {
	struct ipaddr addr;             /* none (::) = free slot */
	uint16_t service;
	uint8_t mac[6];
	uint8_t mac_known;
	uint8_t healthy;
	uint8_t draining;               /* by lbctl drain; weight 0 drains by config */
	uint8_t answers_vip_arp;        /* seen answering ARP or NDP for a VIP: not set up for DSR */
	uint32_t weight;
	uint64_t mac_seen_ms;           /* the MAC last heard (main thread only) */
};

struct lbd_service {
	char name[CFG_NAME_MAX];
	struct ipaddr vip;
	uint16_t port;                  /* network order */
	uint8_t proto;
	enum cfg_on_down on_down;
	int persist;                    /* persistence = client: flows keyed without the client port */
	uint16_t slots[CFG_MAX_BACKENDS];
	size_t n_slots;
	uint16_t sorry_slot;            /* LBD_NO_SLOT: drop when no backend is usable */
	struct maglev *mg;
	uint16_t mg_slots[CFG_MAX_BACKENDS]; /* Maglev entry -> backend slot */
	size_t n_usable;
};

/* A record of a flow change for the peer (sync.c), queued by a worker, sent by the main thread. */
struct lbd_sync_rec {
	struct flow_key key;
	struct ipaddr backend;  /* slots are local, addresses are not */
	uint8_t state;
	uint8_t deleted;
	uint64_t queued_ms;
};

/* What a worker saw in an ARP frame or a Neighbour Advertisement that the main thread must act on. */
struct lbd_arp_event {
	struct ipaddr addr;
	uint8_t mac[6];
	uint8_t claims_vip;     /* a reply claiming a VIP */
};

#define LBD_SYNCQ 65536u        /* per worker, power of two */
#define LBD_ARPQ 256u           /* per worker, power of two */

/* One worker's part of the connection table and its per-backend counts. dp.c alone changes a flow's
 * backend and slot_flows (dp_flow_*). The worker uses it inside a batch, the main thread between
 * worker_lock and worker_unlock, or under dp_lock held for writing (dp_apply_config). */
struct dp_table {
	struct flow_table *flows;
	uint64_t *slot_fwd;             /* [LBD_MAX_SLOTS] frames forwarded per backend slot */
	uint64_t *slot_bytes;           /* [LBD_MAX_SLOTS] bytes of those frames (as received, Ethernet header on) */
	int64_t *slot_flows;            /* [LBD_MAX_SLOTS] flows in this table per slot */
};

/* The queues from a worker (producer) to the main thread (consumer), lbd/spsc.h. */
struct lbd_syncq {
	struct spsc q;
	struct lbd_sync_rec *rec;       /* [LBD_SYNCQ] flow updates for the peer; sync.c drains them */
};

struct lbd_arpq {
	struct spsc q;
	struct lbd_arp_event ev[LBD_ARPQ];      /* what ARP frames said; arp.c drains them */
};

/* What the per-frame path (fwd.c) works on: one worker's state, handed to fwd_batch by that worker,
 * which holds dp_lock for reading and its own lock around each batch. */
struct fwd_ctx {
	struct lbd *l;                  /* the shared data-plane state: fwd.c only reads it */
	struct ring *ring;              /* the worker's */
	struct dp_table tab;
	struct lbd_counters ctr;
	struct frag_table frags;        /* which service each recent datagram's first fragment went to */
	struct lbd_syncq syncq;
	struct lbd_arpq arpq;
};

struct lbd_worker {
	unsigned id;                    /* its index in the fanout group */
	pthread_t thread;
	int started;
	struct ev_loop *loop;
	ev_io rx_io;
	ev_timer expire_timer, refresh_timer;
	ev_async stop;
	pthread_mutex_t lock;
	int lock_waiters;               /* the main thread waits for `lock` (worker_lock, worker_leave) */
	uint32_t refresh_cursor;
	int busy_wait;                  /* wait for the next frame under load (fwd_wait) */
	struct ring *ring;              /* the worker's own, opened and closed by worker.c; fwd.ring */
	struct flow_table *flows;       /* the worker's part of the connection table; fwd.tab.flows */
	struct fwd_ctx fwd;             /* what the worker hands fwd.c for each frame */
};

enum lbd_reason { LBD_REASON_STARTUP, LBD_REASON_STANDALONE, LBD_REASON_VRRPD, LBD_REASON_OPERATOR,
		  LBD_REASON_FENCED, LBD_REASON_ECMP };

struct lbd {
	struct ev_loop *loop;
	struct cfg *cfg;
	char cfg_path[PATH_MAX];
	char node[CFG_NAME_MAX];
	char run_dir[PATH_MAX];
	uid_t uid;                      /* who lbd runs as after start-up (config `user`) */
	gid_t gid;
	struct kdrop *kdrop;            /* the helper that alone may change nftables and routes */
	struct announce *announce;      /* mode = ecmp: the VIP routes (announce.c); NULL in a pair */
	uint32_t node_addr;             /* network order: source of our ARP requests: the node's address, or
					 * the interface's first IPv4 one for an IPv6 node; 0: none (probes) */
	struct ipaddr node_addr6;       /* source of our Neighbour Solicitations: the node's IPv6 address, or
					 * the interface's link-local one */
	uint8_t mac[6];
	int standalone;
	uint64_t start_ms;

	int active;                     /* forwards */
	int owner;                      /* answers ARP for the VIPs, sends gratuitous ARP: active, not releasing */
	enum lbd_reason reason;
	uint64_t fence_deadline_ms;     /* 0 = no fence */
	uint64_t release_until_ms;      /* releasing the VIPs: forwarding until then (0 = not releasing) */
	int stopping;                   /* SIGTERM/SIGINT while active: leaving once the peer has the VIPs */
	int announced;                  /* mode = ecmp: every VIP's route is in announce_table (announce.c) */
	char announce_why[64];          /* "announced", or why not */

	struct lbd_service services[CFG_MAX_SERVICES];
	size_t n_services;
	struct ipaddr vips[LBD_MAX_VIPS];
	size_t n_vips;
	struct lbd_backend slots[LBD_MAX_SLOTS];
	uint16_t next_slot;
	uint64_t arp_last_full_ms;
	uint64_t arp_fast_until_ms;       /* resolve new backends quickly until then */
	uint64_t arp_refused_log_ms;      /* last log line about refused MAC changes */
	uint64_t arp_refused_unlogged;    /* refused since that line */
	struct flow_timeouts timeouts;

	pthread_rwlock_t dp_lock;
	struct lbd_worker *workers;
	unsigned n_workers;
	int fanout_id;
	int sync_on;                    /* sync.c's session is established: workers queue flow updates */
	ev_async *sync_wake;            /* sync.c's; a worker queued into an empty queue (NULL: no sync) */
	int ctl_tx_fd;                  /* AF_PACKET socket for ARP/GARP from the main thread */
	int ifindex;
	ev_async arp_wake;
	struct sync_ctx *sync;
	struct health_ctx *health;
	struct ipc_server *ctl;
	struct lbd_counters ctr;        /* main thread's own (ARP, GARP) */
	uint64_t reloads;
	char last_reload_error[256];
	struct lbd_service dp_old[CFG_MAX_SERVICES];    /* dp_apply_config's scratch */
	uint8_t dp_keep[LBD_MAX_SLOTS];

	ev_timer fence_timer, garp_timer, garp_refresh_timer, arp_timer, release_timer, stop_timer;
	ev_signal sig_int, sig_term, sig_hup;
};

/* dp.c: services, backend slots and their Maglev tables */
int dp_apply_config(struct lbd *l, struct cfg *cfg);   /* takes ownership of cfg on success */
void dp_rebuild_service(struct lbd *l, struct lbd_service *s);
void dp_rebuild_all(struct lbd *l);
int dp_backend_usable(const struct lbd_backend *b);
struct lbd_service *dp_find_service(struct lbd *l, const char *name);
struct lbd_backend *dp_find_backend(struct lbd *l, struct lbd_service *s, const struct ipaddr *addr);
int dp_is_vip(const struct lbd *l, const struct ipaddr *addr);
int dp_is_backend(const struct lbd *l, const struct ipaddr *addr);
/* The service of a VIP, protocol and port (network order). */
struct lbd_service *dp_lookup_service(struct lbd *l, const struct ipaddr *vip, uint8_t proto, uint16_t port);
/* The one service of a VIP and protocol (DP_ANY_PROTO: of any protocol), NULL if there are none or
 * several. */
#define DP_ANY_PROTO 0xff            /* IANA's reserved protocol number: no packet names it */
struct lbd_service *dp_only_service(struct lbd *l, const struct ipaddr *vip, uint8_t proto);
/* A worker's table: its connection table and per-slot counts (allocated here); 0 or -1. */
int dp_table_init(struct dp_table *t, struct flow_table *flows);
void dp_table_fini(struct dp_table *t);
/* The one place a flow gets or changes its backend, so the per-backend count follows it: a new flow
 * (NULL when the table is full), a flow moved to slot, a flow deleted, a flow flow_expire removed. */
struct flow *dp_flow_insert(struct dp_table *t, const struct flow_key *k, uint16_t slot, uint8_t state,
			    uint64_t now);
void dp_flow_assign(struct dp_table *t, struct flow *f, uint16_t slot);
void dp_flow_delete(struct dp_table *t, struct flow *f);
void dp_flow_gone(struct dp_table *t, const struct flow *f);
/* The write side of dp_lock, for every main-thread change of services, slots, VIPs or mode. */
void dp_write_lock(struct lbd *l);
void dp_write_unlock(struct lbd *l);

/* A spin-wait hint to the CPU. */
#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() do { } while (0)
#endif

/* fwd.c: the per-frame path, called by the worker once per batch (it holds the locks); takes none.
 * Handles the frames of the RX ring for at most 1 ms or 8192 frames; busy_wait: a V2 ring, wait for
 * more frames while it is busy (fwd_wait). */
void fwd_batch(struct fwd_ctx *c, int busy_wait);
void fwd_flow_gone(void *arg, const struct flow *f, const struct flow_key *k);  /* flow_expire's; arg: fwd_ctx */
/* The flow is alive and was used since its last refresh: tell the peer again. */
void fwd_flow_refresh(struct fwd_ctx *c, const struct flow *f);

/* arp.c: backend MAC resolution and what the workers saw in ARP frames (main thread) */
void arp_events_cb(struct ev_loop *loop, ev_async *a, int revents);           /* main: worker events */
int arp_open(struct lbd *l);
void arp_close(struct lbd *l);
void arp_refresh_cb(struct ev_loop *loop, ev_timer *w, int revents);
/* What an ARP frame saying `mac` for a backend means for its slot (pure): the first MAC makes it usable
 * (Maglev is rebuilt); the same MAC confirms it; a different MAC replaces it only when the known MAC has
 * not been heard for ARP_MAC_LOCK_MS, otherwise it is refused and counted. */
#define ARP_MAC_LOCK_MS 1000u
#define ARP_REFUSED_LOG_MS 10000u
enum arp_mac_verdict { ARP_MAC_SAME, ARP_MAC_FIRST, ARP_MAC_CHANGE, ARP_MAC_REFUSE };
enum arp_mac_verdict arp_mac_judge(const struct lbd_backend *b, const uint8_t *mac, uint64_t now);
/* Main thread: applies an ARP frame from a backend address (`now` passed in for the unit tests). */
void arp_learn(struct lbd *l, const struct ipaddr *addr, const uint8_t *mac, uint64_t now);

/* arptx.c: ARP frames the main thread sends on its own packet socket */
int arptx_open(struct lbd *l);
void arptx_close(struct lbd *l);
/* An ARP request (IPv4 target) or a Neighbour Solicitation (IPv6 target). */
int arptx_request(struct lbd *l, const struct ipaddr *target);
/* Gratuitous ARP for each IPv4 VIP and an unsolicited NA for each IPv6 VIP. */
void arptx_garp_burst(struct lbd *l);

/* mode.c: active/standby, releasing the VIPs, fencing, gratuitous ARP scheduling and the graceful stop */
void mode_set(struct lbd *l, int active, enum lbd_reason why, uint32_t fence_ms, int force_garp,
	      uint32_t release_ms);
const char *mode_reason_str(enum lbd_reason r);
void mode_init(struct lbd *l);
/* SIGTERM/SIGINT: a standby lbd leaves at once, an active one once the peer has the VIPs. */
void mode_stop(struct lbd *l, int signum);
/* While stopping: the peer has taken the VIPs (how: for the log); release them and leave. */
void mode_peer_has_vips(struct lbd *l, const char *how);
/* mode = ecmp: forwarding from now on without vrrpd, never the owner (no ARP for the VIPs), no fence. */
void mode_ecmp(struct lbd *l);

/* main.c */
int lbd_reload(struct lbd *l, char *err, size_t errlen);

/* ctl.c: the control socket */
int ctl_open(struct lbd *l);
void ctl_close(struct lbd *l);

/* filter.c: classic BPF filter for the RX ring, and the fanout program that spreads flows over workers */
size_t filter_build(const struct ipaddr *vips, size_t n, struct sock_filter *out, size_t cap);
size_t filter_fanout_build(unsigned n_workers, struct sock_filter *out, size_t cap);
/* The same choice in C, for the addresses and host-order ports of the client->VIP direction. */
unsigned filter_fanout_index(const struct ipaddr *src, const struct ipaddr *dst, uint16_t sport, uint16_t dport,
			     unsigned n);

#include "worker.h"

#endif
