/* The vrrpd daemon's one context struct: the election state machine, the authenticated heartbeat
 * socket, the link to the local lbd, the peer as last heard, and the timers that feed the machine. */
#ifndef DSR_VRRPD_H
#define DSR_VRRPD_H

#include <ev.h>
#include <linux/filter.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "fsm.h"
#include "ipc.h"

struct vrrpd_rejects {
	uint64_t malformed, bad_mac, replay, unknown_node, unknown_key, stale_epoch;
	uint64_t kernel_dropped;        /* the socket's drop count: filtered (not the peer's address), buffer full */
};

struct vrrpd_peer {
	int heard;                      /* a valid heartbeat arrived since start */
	uint64_t last_heard_ms;
	uint8_t priority;
	int state;                      /* enum vrrp_state as sent */
	uint32_t advert_ms;
	int digest_match;
	int lbd_healthy;
	uint64_t flows;
	struct ipaddr vips[CFG_MAX_SERVICES];   /* IPv4 ones first */
	size_t n_vips;
	char sync_state[32];
	int stopping;                   /* its vrrpd or lbd is stopping */
};

struct vrrpd {
	struct ev_loop *loop;
	struct cfg *cfg;
	char cfg_path[PATH_MAX];
	char run_dir[PATH_MAX];
	uid_t uid;                      /* who vrrpd runs as after start-up (config `user`) */
	gid_t gid;
	char node[CFG_NAME_MAX];
	struct cfg_node self, peer;     /* copies: a reload may move them */
	int have_peer;
	uint64_t start_ms;

	struct vrrp_fsm fsm;
	struct auth_keyring *keys;
	struct auth_session *hb;
	int sock;                       /* heartbeats */
	int ioctl_fd;                   /* lbdlink's link checks */
	ev_io sock_io;
	ev_timer fsm_timer;
	ev_timer tick;                  /* lbd keepalive and link check, every advert interval */
	struct vrrpd_peer peer_info;
	struct vrrpd_rejects rej;
	uint64_t adverts_sent, adverts_received, transitions;
	uint64_t prompt_sent_ms;        /* last heartbeat sent in answer to an untrusted epoch */

	/* the local lbd */
	struct ipc_client *lbd;
	int lbd_want_active;
	int lbd_garp_pending;
	uint32_t lbd_release_ms;        /* with a standby push: keep forwarding this long (a yield) */
	int lbd_stopping;               /* lbd says it is stopping: hand the VIPs over, stay */
	uint64_t lbd_last_ok_ms;
	unsigned lbd_failures;
	int lbd_ever_ok;
	int lbd_healthy;
	uint64_t lbd_flows;
	int sync_ready;                 /* lbd's bulk sync is done (or timed out): we may preempt */
	char sync_state[32];
	int link_up;
	char fault_reason[96];

	struct ipc_server *ctl;
	int stopping;
	ev_timer stop_grace;
	ev_signal sig_int, sig_term, sig_hup;
};

/* advert.c: the heartbeat socket */
int advert_open(struct vrrpd *v);
/* Lets only datagrams from the peer's address into the heartbeat socket (again after a reload). */
void advert_filter(struct vrrpd *v);
/* That filter, a classic BPF program that accepts only datagrams whose IP source is peer (of either
 * family); written into prog, ADVERT_FILTER_MAX instructions at most; returns how many. */
#define ADVERT_FILTER_MAX 10
size_t advert_filter_prog(const struct ipaddr *peer, struct sock_filter *prog);
void advert_close(struct vrrpd *v);
void advert_send(struct vrrpd *v);
/* Takes in one queued datagram; *act is what the state machine decided (to apply). -1: none queued. */
int advert_receive(struct vrrpd *v, unsigned *act);

/* lbdlink.c: keeps lbd's mode in step with the election and watches lbd's health */
void lbdlink_init(struct vrrpd *v, ipc_reply_cb on_reply);
void lbdlink_close(struct vrrpd *v);
void lbdlink_push(struct vrrpd *v);
/* Takes in lbd's answer (resp NULL: none). Returns LBDLINK_JUDGE when lbd's stopping changed (judge
 * now, not at the next tick) and LBDLINK_PUSH when the election changed while the request was in flight
 * (tell lbd now). */
#define LBDLINK_JUDGE 1u
#define LBDLINK_PUSH 2u
unsigned lbdlink_reply(struct vrrpd *v, const uint8_t *resp, size_t len);
/* Judges lbd and the LAN link; returns what the state machine decided (to apply). */
unsigned lbdlink_judge(struct vrrpd *v);

/* status.c: vrrpd's control socket */
int status_open(struct vrrpd *v);
void status_close(struct vrrpd *v);

/* notify.c */
void notify_run(struct vrrpd *v, const char *cmd, const char *state);

/* node.c: the loop's events, and what the state machine decides applied to the world */
int vrrpd_set_node(struct vrrpd *v, struct cfg *cfg, char *err, size_t errlen);
void vrrpd_fsm_config(const struct vrrpd *v, struct vrrp_fsm_config *fc);
void vrrpd_start(struct vrrpd *v, const struct vrrp_fsm_config *fc);
void vrrpd_actions(struct vrrpd *v, unsigned act);
void vrrpd_rearm(struct vrrpd *v);
int vrrpd_reload(struct vrrpd *v, char *err, size_t errlen);

#endif
