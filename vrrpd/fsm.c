/* The vrrpd election state machine, after RFC 5798 section 6.4 (6.4.1 Initialize, 6.4.2 Backup,
 * 6.4.3 Master), reduced to a pair of nodes, with FAULT and a graceful stop that never leaves the pair
 * without a master. Pure: the time comes in as an argument and actions go out as a bitmask.
 *
 *              startup               master-down timer expires
 *   +------+  ---------->  +--------+  -------------------------->  +--------+
 *   | INIT |               | BACKUP |                               | MASTER | <-- advert from a lower peer
 *   +------+               +--------+  <--------------------------  +--------+     that claims MASTER:
 *      |                    ^     |     advert from a higher peer     |    |        SEND_ADVERT|SEND_GARP
 *      |                    |     |     (priority, then address)      |    |
 *      |       fault(false) |     | fault(true)                       |    | shutdown: SEND_ADVERT (prio 0)
 *      |                    |     v                                   |    v
 *      |   fault(true)    +---------+        fault(true)              |  MASTER, stopping: still forwards,
 *      +----------------> |  FAULT  | <-------------------------------+  advertises 0 every interval
 *                         +---------+  (from stopping too: STOP_DONE)      |
 *                  advertises 0 every interval,                            | the peer claims MASTER, or
 *                  ignores adverts                                         | stop_timeout_ms passes
 *                                                                          v
 *                                                          BACKUP, stopped: BECOME_BACKUP|STOP_DONE
 *
 *   shutdown in INIT, BACKUP or FAULT: SEND_ADVERT (prio 0)|STOP_DONE at once, state unchanged, stopped.
 *
 *   release (lbd is stopping; the daemon stays): MASTER goes stopping as for shutdown, but once the peer
 *   claims MASTER (or stop_timeout_ms passes) it enters FAULT instead of leaving: priority 0 until lbd is
 *   back (fault(false) -> BACKUP). In INIT or BACKUP, release enters FAULT at once.
 *
 * Differences from the RFC, all deliberate:
 * - Rank is one total order, priority then address, in BACKUP as in MASTER: a preempting backup also takes
 *   over from an equal-priority master with a lower address (the RFC only preempts on a higher priority).
 * - preempt_delay (keepalived's idea) and can_preempt hold back preemption only; a dead master (silence)
 *   or one stepping down (priority 0) is always replaced.
 * - A stopping master keeps MASTER and its VIPs until it hears the new master, so no packet is lost; it
 *   does not answer priority-0 adverts, which would only echo 0 back.
 * - Adverts carrying our own address are dropped: two nodes with the same rank could never settle.
 * - Times are whole milliseconds; Skew_Time rounds down (at most 1 ms early), and Master_Down_Interval
 *   uses our priority with the master's learnt interval, as in RFC 5798 section 6.1. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fsm.h"

uint32_t vrrp_skew_ms(uint8_t priority, uint32_t interval_ms)
{
	/* At most 255 * 40000: no overflow in 64 bits, nor in 32. */
	return (uint32_t)(((uint64_t)(256 - priority) * interval_ms) / 256);
}

uint32_t vrrp_master_down_ms(uint8_t priority, uint32_t interval_ms)
{
	return 3 * interval_ms + vrrp_skew_ms(priority, interval_ms);
}

static uint32_t master_interval(const struct vrrp_fsm *f)
{
	return f->master_adver_ms ? f->master_adver_ms : f->cfg.advert_ms;
}

uint32_t vrrp_fsm_skew_ms(const struct vrrp_fsm *f)
{
	return vrrp_skew_ms(f->cfg.priority, master_interval(f));
}

uint32_t vrrp_fsm_master_down_ms(const struct vrrp_fsm *f)
{
	return vrrp_master_down_ms(f->cfg.priority, master_interval(f));
}

int vrrp_fsm_config_check(const struct vrrp_fsm_config *cfg, const char **why)
{
	const char *w = NULL;

	if (cfg->priority < VRRP_PRIO_MIN || cfg->priority > VRRP_PRIO_MAX)
		w = "priority must be 1..254";
	else if (cfg->advert_ms < VRRP_ADVERT_MIN_MS || cfg->advert_ms > VRRP_ADVERT_MAX_MS)
		w = "advert interval must be 5..40000 ms";
	else if (ipaddr_is_none(&cfg->addr))
		w = "node address must be set";
	if (why)
		*why = w;
	return w ? -1 : 0;
}

int vrrp_fsm_init(struct vrrp_fsm *f, const struct vrrp_fsm_config *cfg)
{
	if (vrrp_fsm_config_check(cfg, NULL) < 0) {
		errno = EINVAL;
		return -1;
	}
	memset(f, 0, sizeof(*f));
	f->cfg = *cfg;
	f->state = VRRP_INIT;
	f->can_preempt = true;
	return 0;
}

/* Does the peer outrank us? Priority first, then the higher address: its 16 bytes compared in network
 * order, which for two IPv4 addresses (both IPv4-mapped, ::ffff:a.b.c.d) is their order as numbers. */
static bool peer_wins(const struct vrrp_fsm *f, const struct vrrp_advert *a)
{
	if (a->priority != f->cfg.priority)
		return a->priority > f->cfg.priority;
	return memcmp(a->addr.b, f->cfg.addr.b, sizeof(a->addr.b)) > 0;
}

/* RFC 5798 6.4.1 (for a non-owner) and leaving FAULT: forget the old master's interval, start the
 * preempt_delay window and wait a full Master_Down_Interval for a master to speak. */
static unsigned enter_backup_fresh(struct vrrp_fsm *f, uint64_t now)
{
	f->state = VRRP_BACKUP;
	f->master_adver_ms = 0;
	f->backup_since_ms = now;
	f->master_down_at = now + vrrp_fsm_master_down_ms(f);
	return VRRP_ACT_BECOME_BACKUP;
}

static unsigned become_master(struct vrrp_fsm *f, uint64_t now)
{
	f->state = VRRP_MASTER;
	f->advert_at = now + f->cfg.advert_ms;
	f->cnt.became_master++;
	return VRRP_ACT_SEND_ADVERT | VRRP_ACT_BECOME_MASTER;
}

static unsigned enter_fault(struct vrrp_fsm *f, uint64_t now)
{
	f->state = VRRP_FAULT;
	f->advert_at = now + f->cfg.advert_ms;
	f->cnt.entered_fault++;
	return VRRP_ACT_ENTER_FAULT | VRRP_ACT_SEND_ADVERT;
}

/* The graceful stop is over: hand the VIPs over (or give up waiting) and let the daemon exit; after a
 * release, hold priority 0 in FAULT until lbd is back. */
static unsigned finish_stop(struct vrrp_fsm *f, uint64_t now)
{
	if (f->releasing) {
		f->stopping = false;
		f->releasing = false;
		return enter_fault(f, now);
	}
	f->state = VRRP_BACKUP;
	f->stopping = false;
	f->stopped = true;
	f->cnt.became_backup++;
	return VRRP_ACT_BECOME_BACKUP | VRRP_ACT_STOP_DONE;
}

unsigned vrrp_fsm_startup(struct vrrp_fsm *f, uint64_t now_ms)
{
	if (f->stopped || f->state != VRRP_INIT)
		return 0;
	return enter_backup_fresh(f, now_ms);
}

/* RFC 5798 6.4.2, "If an ADVERTISEMENT is received". */
static unsigned backup_advert(struct vrrp_fsm *f, const struct vrrp_advert *a, uint64_t now)
{
	bool may_preempt;

	if (a->priority == 0) {
		/* The master steps down: take over after our skew, the higher priority first. */
		f->master_down_at = now + vrrp_fsm_skew_ms(f);
		return 0;
	}
	may_preempt = f->cfg.preempt && f->can_preempt &&
		now >= f->backup_since_ms + f->cfg.preempt_delay_ms;
	if (may_preempt && !peer_wins(f, a))
		return 0;       /* a live master we outrank: let the timer run out and take over */
	f->master_adver_ms = a->advert_ms;
	f->master_down_at = now + vrrp_fsm_master_down_ms(f);
	return 0;
}

/* RFC 5798 6.4.3, "If an ADVERTISEMENT is received". */
static unsigned master_advert(struct vrrp_fsm *f, const struct vrrp_advert *a, uint64_t now)
{
	if (f->stopping) {
		/* Only the new master releases us; until then we keep forwarding. */
		if (a->master && a->priority > 0)
			return finish_stop(f, now);
		return 0;
	}
	if (a->priority == 0) {
		f->advert_at = now + f->cfg.advert_ms;
		return VRRP_ACT_SEND_ADVERT;
	}
	if (peer_wins(f, a)) {
		f->state = VRRP_BACKUP;
		f->master_adver_ms = a->advert_ms;
		f->master_down_at = now + vrrp_fsm_master_down_ms(f);
		f->cnt.became_backup++;
		return VRRP_ACT_BECOME_BACKUP;
	}
	if (!a->master)
		return 0;
	/* Split brain ending in our favour: the peer yields on this advert; the LAN relearns our MAC. */
	f->advert_at = now + f->cfg.advert_ms;
	return VRRP_ACT_SEND_ADVERT | VRRP_ACT_SEND_GARP;
}

unsigned vrrp_fsm_advert(struct vrrp_fsm *f, const struct vrrp_advert *a, uint64_t now_ms)
{
	if (f->stopped || f->state == VRRP_INIT || f->state == VRRP_FAULT) {
		f->cnt.rx_ignored++;
		return 0;
	}
	if (a->advert_ms < VRRP_ADVERT_MIN_MS || a->advert_ms > VRRP_ADVERT_MAX_MS) {
		f->cnt.rx_invalid++;
		return 0;
	}
	if (ipaddr_eq(&a->addr, &f->cfg.addr)) {
		f->cnt.rx_own_addr++;
		return 0;
	}
	if (f->state == VRRP_BACKUP)
		return backup_advert(f, a, now_ms);
	return master_advert(f, a, now_ms);
}

/* The advert after the one due now: on the interval's grid, so a timer that fires a little late does not
 * stretch every interval; after a stall longer than an interval, one advert now and the grid restarts
 * (never a burst to catch up). */
static void next_advert(struct vrrp_fsm *f, uint64_t now_ms)
{
	f->advert_at += f->cfg.advert_ms;
	if (f->advert_at <= now_ms)
		f->advert_at = now_ms + f->cfg.advert_ms;
}

unsigned vrrp_fsm_timer(struct vrrp_fsm *f, uint64_t now_ms)
{
	if (now_ms < vrrp_fsm_deadline(f))
		return 0;
	switch (f->state) {
	case VRRP_BACKUP:
		return become_master(f, now_ms);
	case VRRP_MASTER:
		if (f->stopping && now_ms >= f->stop_at)
			return finish_stop(f, now_ms);
		next_advert(f, now_ms);
		return VRRP_ACT_SEND_ADVERT;
	case VRRP_FAULT:
		next_advert(f, now_ms);
		return VRRP_ACT_SEND_ADVERT;
	case VRRP_INIT:
		break;
	}
	return 0;
}

uint64_t vrrp_fsm_deadline(const struct vrrp_fsm *f)
{
	if (f->stopped)
		return VRRP_NEVER;
	switch (f->state) {
	case VRRP_BACKUP:
		return f->master_down_at;
	case VRRP_MASTER:
		if (f->stopping && f->stop_at < f->advert_at)
			return f->stop_at;
		return f->advert_at;
	case VRRP_FAULT:
		return f->advert_at;
	case VRRP_INIT:
		break;
	}
	return VRRP_NEVER;
}

unsigned vrrp_fsm_fault(struct vrrp_fsm *f, bool fault, uint64_t now_ms)
{
	unsigned act;

	if (f->stopped)
		return 0;
	if (!fault)
		return f->state == VRRP_FAULT ? enter_backup_fresh(f, now_ms) : 0;
	if (f->state == VRRP_FAULT)
		return 0;
	act = 0;
	if (f->stopping) {
		/* We cannot forward any more, so there is nothing left to hand over. A release ends in FAULT
		 * anyway; a stop of the daemon is done. */
		if (!f->releasing) {
			f->stopped = true;
			act = VRRP_ACT_STOP_DONE;
		}
		f->stopping = false;
		f->releasing = false;
	}
	return act | enter_fault(f, now_ms);
}

unsigned vrrp_fsm_release(struct vrrp_fsm *f, uint64_t now_ms)
{
	if (f->stopped || f->stopping || f->state == VRRP_FAULT)
		return 0;
	if (f->state != VRRP_MASTER)
		return enter_fault(f, now_ms);
	if (f->cfg.stop_timeout_ms == 0)
		return enter_fault(f, now_ms);
	f->stopping = true;
	f->releasing = true;
	f->stop_at = now_ms + f->cfg.stop_timeout_ms;
	f->advert_at = now_ms + f->cfg.advert_ms;
	return VRRP_ACT_SEND_ADVERT;
}

unsigned vrrp_fsm_shutdown(struct vrrp_fsm *f, uint64_t now_ms)
{
	if (f->stopping && f->releasing) {
		/* Already handing over for lbd: the same handover now ends the daemon too. */
		f->releasing = false;
		return 0;
	}
	if (f->stopped || f->stopping)
		return 0;
	if (f->state != VRRP_MASTER) {
		f->stopped = true;
		return VRRP_ACT_SEND_ADVERT | VRRP_ACT_STOP_DONE;
	}
	if (f->cfg.stop_timeout_ms == 0)
		return VRRP_ACT_SEND_ADVERT | finish_stop(f, now_ms);
	f->stopping = true;
	f->stop_at = now_ms + f->cfg.stop_timeout_ms;
	f->advert_at = now_ms + f->cfg.advert_ms;
	return VRRP_ACT_SEND_ADVERT;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

unsigned vrrp_fsm_set_config(struct vrrp_fsm *f, const struct vrrp_fsm_config *cfg, uint64_t now_ms)
{
	struct vrrp_fsm_config old = f->cfg;

	if (vrrp_fsm_config_check(cfg, NULL) < 0)
		return 0;
	f->cfg = *cfg;
	if (f->stopped)
		return 0;
	switch (f->state) {
	case VRRP_BACKUP:
		/* Never push takeover later than the old timer would have; the master's next advert re-arms
		 * it with the new rank. A new preempt_delay counts from the same start. */
		f->master_down_at = min_u64(f->master_down_at, now_ms + vrrp_fsm_master_down_ms(f));
		break;
	case VRRP_MASTER:
		if (!f->stopping && (old.priority != cfg->priority || !ipaddr_eq(&old.addr, &cfg->addr) ||
				     old.advert_ms != cfg->advert_ms)) {
			/* Let the peer judge our new rank and learn the new interval now. */
			f->advert_at = now_ms + cfg->advert_ms;
			return VRRP_ACT_SEND_ADVERT;
		}
		f->advert_at = min_u64(f->advert_at, now_ms + cfg->advert_ms);
		break;
	case VRRP_FAULT:
		f->advert_at = min_u64(f->advert_at, now_ms + cfg->advert_ms);
		break;
	case VRRP_INIT:
		break;
	}
	return 0;
}

void vrrp_fsm_set_can_preempt(struct vrrp_fsm *f, bool ok)
{
	f->can_preempt = ok;
}

uint8_t vrrp_fsm_advert_priority(const struct vrrp_fsm *f)
{
	if (f->stopped || f->stopping || f->state == VRRP_INIT || f->state == VRRP_FAULT)
		return 0;
	return f->cfg.priority;
}

void vrrp_fsm_advert_fill(const struct vrrp_fsm *f, struct vrrp_advert *out)
{
	out->priority = vrrp_fsm_advert_priority(f);
	out->addr = f->cfg.addr;
	out->advert_ms = f->cfg.advert_ms;
	out->master = f->state == VRRP_MASTER;
}

enum vrrp_state vrrp_fsm_state(const struct vrrp_fsm *f)
{
	return f->state;
}

bool vrrp_fsm_stopping(const struct vrrp_fsm *f)
{
	return f->stopping;
}

bool vrrp_fsm_releasing(const struct vrrp_fsm *f)
{
	return f->releasing;
}

const char *vrrp_state_name(enum vrrp_state s)
{
	switch (s) {
	case VRRP_INIT:
		return "INIT";
	case VRRP_BACKUP:
		return "BACKUP";
	case VRRP_MASTER:
		return "MASTER";
	case VRRP_FAULT:
		return "FAULT";
	}
	return "?";
}

const char *vrrp_actions_str(unsigned actions, char *buf, size_t len)
{
	static const char *const names[] = {
		"SEND_ADVERT", "BECOME_MASTER", "BECOME_BACKUP", "SEND_GARP", "STOP_DONE", "ENTER_FAULT",
	};
	size_t off = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(actions & (1u << i)))
			continue;
		int n = snprintf(buf + off, len - off, "%s%s", off ? "|" : "", names[i]);
		if (n < 0 || (size_t)n >= len - off) {
			buf[off] = '\0';       /* keep only the names that fit whole */
			return buf;
		}
		off += (size_t)n;
	}
	if (off == 0 && len > strlen("none"))
		strcpy(buf, "none");
	return buf;
}
