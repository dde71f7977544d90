/* The vrrpd election state machine: VRRPv3 (RFC 5798 section 6.4) for a pair of nodes, plus FAULT and a
 * graceful, zero-loss stop. It is pure: no I/O, no clock reads, no allocation. Every entry point takes the
 * time and returns a bitmask of actions for the daemon glue; the state diagram is at the top of fsm.c. */
#ifndef VRRP_FSM_H
#define VRRP_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipaddr.h"

#define VRRP_PRIO_MIN       1
#define VRRP_PRIO_MAX       254         /* 255 (address owner) does not exist in a pair */
#define VRRP_ADVERT_MIN_MS  5           /* below RFC 5798's 10 ms: docs/ARCHITECTURE.md, Scheduling */
#define VRRP_ADVERT_MAX_MS  40000
#define VRRP_NEVER          UINT64_MAX  /* vrrp_fsm_deadline() when no timer runs */

/* Same values as NodeState in proto/heartbeat.proto. */
enum vrrp_state { VRRP_INIT, VRRP_BACKUP, VRRP_MASTER, VRRP_FAULT };

/* Returned, or-ed together, by every entry point. When SEND_ADVERT is set, build the heartbeat with
 * vrrp_fsm_advert_fill() after the call returns: the call has already set what the advert must say. */
enum vrrp_action {
	VRRP_ACT_SEND_ADVERT   = 1 << 0,  /* send a heartbeat now */
	VRRP_ACT_BECOME_MASTER = 1 << 1,  /* tell lbd: active, gratuitous ARP burst */
	VRRP_ACT_BECOME_BACKUP = 1 << 2,  /* tell lbd: standby */
	VRRP_ACT_SEND_GARP     = 1 << 3,  /* still master after a split brain: announce the VIPs again */
	VRRP_ACT_STOP_DONE     = 1 << 4,  /* graceful stop finished: the daemon may exit */
	VRRP_ACT_ENTER_FAULT   = 1 << 5,  /* tell lbd: standby */
};

struct vrrp_fsm_config {
	uint8_t priority;               /* VRRP_PRIO_MIN..VRRP_PRIO_MAX */
	struct ipaddr addr;             /* ours, IPv4 or IPv6, not none; the higher one wins a priority tie */
	uint32_t advert_ms;             /* VRRP_ADVERT_MIN_MS..VRRP_ADVERT_MAX_MS */
	bool preempt;                   /* take over from a live master of lower rank */
	uint32_t preempt_delay_ms;      /* no preemption this long after startup or after a fault clears */
	uint32_t stop_timeout_ms;       /* graceful stop: longest wait for the new master; 0 = do not wait */
};

/* An authenticated, fresh heartbeat from the peer, or one we are about to send. */
struct vrrp_advert {
	uint8_t priority;               /* 0 = the sender is stepping down or faulty */
	struct ipaddr addr;             /* the sender's */
	uint32_t advert_ms;
	bool master;                    /* the sender is in MASTER */
};

struct vrrp_fsm_counters {
	uint64_t became_master;
	uint64_t became_backup;         /* from MASTER only */
	uint64_t entered_fault;
	uint64_t rx_invalid;            /* interval out of range: advert dropped */
	uint64_t rx_own_addr;           /* our own address: our echo or a misconfigured peer; dropped */
	uint64_t rx_ignored;            /* heard in INIT, FAULT or after the stop: dropped */
};

/* Read it through the functions below, except cnt, which the glue may report as it is. */
struct vrrp_fsm {
	struct vrrp_fsm_config cfg;
	enum vrrp_state state;
	bool stopping;                  /* MASTER that advertises 0 and waits for the new master */
	bool releasing;                 /* ... because lbd stops (vrrp_fsm_release), not the daemon */
	bool stopped;                   /* STOP_DONE was returned: every entry point is a no-op */
	bool can_preempt;
	uint32_t master_adver_ms;       /* interval learnt from the master's adverts; 0 = not learnt */
	uint64_t backup_since_ms;       /* start of the preempt_delay window */
	uint64_t master_down_at;        /* BACKUP */
	uint64_t advert_at;             /* MASTER and FAULT */
	uint64_t stop_at;               /* MASTER while stopping */
	struct vrrp_fsm_counters cnt;
};

/* 0 if cfg is usable, else -1 with *why set to a static sentence (why may be NULL). */
int vrrp_fsm_config_check(const struct vrrp_fsm_config *cfg, const char **why);

/* Puts f in INIT with no timer and can_preempt true. -1 with errno EINVAL if cfg fails the check. */
int vrrp_fsm_init(struct vrrp_fsm *f, const struct vrrp_fsm_config *cfg);

/* INIT -> BACKUP (BECOME_BACKUP) and arms the master-down timer. A no-op in any other state. */
unsigned vrrp_fsm_startup(struct vrrp_fsm *f, uint64_t now_ms);

/* An authenticated, fresh heartbeat from the peer. The glue drops what fails authentication or the
 * replay check; the FSM itself drops (and counts) adverts with a bad interval or with our own address. */
unsigned vrrp_fsm_advert(struct vrrp_fsm *f, const struct vrrp_advert *a, uint64_t now_ms);

/* Call when now_ms >= vrrp_fsm_deadline(); earlier calls change nothing and return 0. Any entry point
 * may move the deadline, even to now (priority 0 heard with a zero skew): re-read it after each call. */
unsigned vrrp_fsm_timer(struct vrrp_fsm *f, uint64_t now_ms);
uint64_t vrrp_fsm_deadline(const struct vrrp_fsm *f);

/* Level-triggered: fault = true when lbd is dead or unresponsive or the link is down (the glue or-s its
 * sources together). Entering FAULT returns ENTER_FAULT|SEND_ADVERT (priority 0); leaving it returns
 * BECOME_BACKUP. Repeating the current level is a no-op. */
unsigned vrrp_fsm_fault(struct vrrp_fsm *f, bool fault, uint64_t now_ms);

/* Graceful stop. MASTER keeps forwarding and advertises priority 0 until the peer claims MASTER or
 * stop_timeout_ms passes, then BECOME_BACKUP|STOP_DONE. Any other state: SEND_ADVERT|STOP_DONE at once. */
unsigned vrrp_fsm_shutdown(struct vrrp_fsm *f, uint64_t now_ms);

/* lbd is stopping: hand the VIPs over without loss, but keep the daemon running. MASTER advertises 0 and
 * keeps forwarding until the peer claims MASTER or stop_timeout_ms passes, then ENTER_FAULT (lbd may go);
 * any other state enters FAULT at once. FAULT holds priority 0 until vrrp_fsm_fault(false) (lbd is back).
 * A fault or shutdown during the handover takes over as those functions say. */
unsigned vrrp_fsm_release(struct vrrp_fsm *f, uint64_t now_ms);

/* Live reload with a config that passed vrrp_fsm_config_check(); otherwise nothing changes and 0 is
 * returned. A MASTER whose priority, address or interval changed advertises at once. */
unsigned vrrp_fsm_set_config(struct vrrp_fsm *f, const struct vrrp_fsm_config *cfg, uint64_t now_ms);

/* false while the bulk connection sync is not done: do not preempt a live master (taking over from a
 * dead or stepping-down one is still allowed). */
void vrrp_fsm_set_can_preempt(struct vrrp_fsm *f, bool ok);

/* The priority to advertise: 0 in INIT, FAULT, while stopping and after the stop. */
uint8_t vrrp_fsm_advert_priority(const struct vrrp_fsm *f);
void vrrp_fsm_advert_fill(const struct vrrp_fsm *f, struct vrrp_advert *out);

enum vrrp_state vrrp_fsm_state(const struct vrrp_fsm *f);
bool vrrp_fsm_stopping(const struct vrrp_fsm *f);
bool vrrp_fsm_releasing(const struct vrrp_fsm *f);
const char *vrrp_state_name(enum vrrp_state s);

/* RFC 5798 timers in whole milliseconds, rounded down:
 *   Skew_Time            = ((256 - priority) * interval) / 256
 *   Master_Down_Interval = 3 * interval + Skew_Time
 * The fsm_ forms use our priority and the master's interval once learnt, our own before. */
uint32_t vrrp_skew_ms(uint8_t priority, uint32_t interval_ms);
uint32_t vrrp_master_down_ms(uint8_t priority, uint32_t interval_ms);
uint32_t vrrp_fsm_skew_ms(const struct vrrp_fsm *f);
uint32_t vrrp_fsm_master_down_ms(const struct vrrp_fsm *f);

/* Writes "SEND_ADVERT|BECOME_MASTER" (or "none") for logs; returns buf. */
const char *vrrp_actions_str(unsigned actions, char *buf, size_t len);

#endif
