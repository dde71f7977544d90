/* The lbd daemon's one context struct, shared by its modules: the config in force, the services and
 * backend slots the forwarding path reads, the worker with its rings and connection table, the
 * active/standby mode, the control socket and the timers. */
#ifndef DSR_LBD_H
#define DSR_LBD_H

#include <ev.h>
#include <stdint.h>

#include "config.h"
#include "flow.h"
#include "maglev.h"
#include "ring.h"
#include "sync.h"
#include "health.h"

#define LBD_MAX_SLOTS 4096          /* backend slots; flows name their backend by slot */
#define LBD_NO_SLOT 0xffffu
#define LBD_MAX_VIPS CFG_MAX_SERVICES
#define LBD_FLOW_DIRTY 0x01             /* flow flag: used since its last sync refresh */

/* Counters of the forwarding and control paths; lbctl shows them by these names. */
struct lbd_counters {
	uint64_t rx_frames, forwarded, tx_bytes;
	uint64_t drop_standby, drop_no_service, drop_no_backend, drop_malformed, drop_not_ipv4, drop_other;
	uint64_t drop_vlan, drop_not_for_us;
	uint64_t arp_replies, garp_sent, icmp_echo_replies, icmp_errors_forwarded, fragments;
	uint64_t flow_table_full, flows_created, flows_expired, flows_rescheduled;
	uint64_t backend_arp_for_vip, arp_requests_sent;
};

struct lbd_backend {
	uint32_t addr;                  /* network order; 0 = free slot */
	uint16_t service;
	uint8_t mac[6];
	uint8_t mac_known;
	uint8_t healthy;
	uint8_t draining;               /* by lbctl drain; weight 0 drains by config */
	uint8_t answers_vip_arp;        /* seen answering ARP for a VIP: not set up for DSR */
	uint32_t weight;
	uint64_t mac_seen_ms;
	uint64_t flows;
	uint64_t forwarded;
};

struct lbd_service {
	char name[CFG_NAME_MAX];
	uint32_t vip;                   /* network order */
	uint16_t port;                  /* network order */
	uint8_t proto;
	enum cfg_on_down on_down;
	uint16_t slots[CFG_MAX_BACKENDS];
	size_t n_slots;
	uint16_t sorry_slot;            /* LBD_NO_SLOT: drop when no backend is usable */
	struct maglev *mg;
	uint16_t mg_slots[CFG_MAX_BACKENDS]; /* Maglev entry -> backend slot */
	size_t n_usable;
	uint64_t forwarded;
};

struct lbd_worker {
	struct lbd *lbd;
	struct ring *ring;
	struct flow_table *flows;
	ev_io rx_io;
};

enum lbd_reason { LBD_REASON_STARTUP, LBD_REASON_STANDALONE, LBD_REASON_VRRPD, LBD_REASON_OPERATOR,
		  LBD_REASON_FENCED };

struct lbd {
	struct ev_loop *loop;
	struct cfg *cfg;
	char cfg_path[PATH_MAX];
	char node[CFG_NAME_MAX];
	char run_dir[PATH_MAX];
	uint32_t node_addr;             /* network order: source of our ARP requests */
	uint8_t mac[6];
	int standalone;
	uint64_t start_ms;

	int active;
	enum lbd_reason reason;
	uint64_t fence_deadline_ms;     /* 0 = no fence */
	unsigned garp_left_bursts;

	struct lbd_service services[CFG_MAX_SERVICES];
	size_t n_services;
	uint32_t vips[LBD_MAX_VIPS];
	size_t n_vips;
	struct lbd_backend slots[LBD_MAX_SLOTS];
	uint16_t next_slot;
	uint64_t arp_last_full_ms;
	uint64_t arp_fast_until_ms;       /* resolve new backends quickly until then */
	struct flow_timeouts timeouts;

	struct lbd_worker worker;
	struct sync_ctx *sync;
	struct health_ctx *health;
	uint32_t refresh_cursor;
	uint64_t refresh_pass_start_ms;
	struct ipc_server *ctl;
	struct lbd_counters ctr;
	uint64_t reloads;
	char last_reload_error[256];

	ev_timer fence_timer, garp_timer, garp_refresh_timer, arp_timer, expire_timer, refresh_timer;
	ev_signal sig_int, sig_term, sig_hup;
};

/* dp.c: services, backend slots and their Maglev tables */
int dp_apply_config(struct lbd *l, struct cfg *cfg);   /* takes ownership of cfg on success */
void dp_rebuild_service(struct lbd *l, struct lbd_service *s);
void dp_rebuild_all(struct lbd *l);
int dp_backend_usable(const struct lbd_backend *b);
struct lbd_service *dp_find_service(struct lbd *l, const char *name);
struct lbd_backend *dp_find_backend(struct lbd *l, struct lbd_service *s, uint32_t addr);
int dp_is_vip(const struct lbd *l, uint32_t addr);
/* The service of a VIP, protocol and port (network order); any_port: the first with that VIP and protocol. */
struct lbd_service *dp_lookup_service(struct lbd *l, uint32_t vip, uint8_t proto, uint16_t port, int any_port);
/* Moves a flow's count from its old backend to slot. */
void dp_flow_assign(struct lbd *l, struct flow *f, uint16_t slot, int is_new);

/* fwd.c: the per-frame path */
void fwd_rx_cb(struct ev_loop *loop, ev_io *w, int revents);
void fwd_flow_gone(void *arg, const struct flow *f);

/* arp.c: VIP ownership on the wire and backend MAC resolution */
void arp_input(struct lbd_worker *w, const uint8_t *frame, const void *pkt);
int arp_send_request(struct lbd *l, uint32_t target);
void arp_send_garp_burst(struct lbd *l);
void arp_refresh_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* mode.c: active/standby, fencing and gratuitous ARP scheduling */
void mode_set(struct lbd *l, int active, enum lbd_reason why, uint32_t fence_ms, int force_garp);
const char *mode_reason_str(enum lbd_reason r);
void mode_init(struct lbd *l);

/* main.c */
int lbd_reload(struct lbd *l, char *err, size_t errlen);

/* ctl.c: the control socket */
int ctl_open(struct lbd *l);
void ctl_close(struct lbd *l);

/* filter.c: classic BPF filter for the RX ring */
size_t filter_build(const uint32_t *vips, size_t n, struct sock_filter *out, size_t cap);

#endif
