/* The link from vrrpd to its lbd: pushes the mode the election decided (with a fence time, so lbd
 * goes standby by itself if vrrpd dies) every advert interval, and judges lbd's health from the
 * answers. A dead or silent lbd, or the LAN link down, puts the election into FAULT (trap 9). */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "control.pb-c.h"
#include "log.h"
#include "vrrpd.h"

unsigned lbdlink_reply(struct vrrpd *v, const uint8_t *resp, size_t len)
{
	Dsrlb__LbdResponse *r;
	int stopping_changed = 0;

	if (!resp) {
		v->lbd_failures++;
		return 0;
	}
	r = dsrlb__lbd_response__unpack(NULL, len, resp);
	if (!r) {
		v->lbd_failures++;
		return 0;
	}
	if (r->ok && r->status) {
		v->lbd_failures = 0;
		v->lbd_ever_ok = 1;
		v->lbd_last_ok_ms = clock_ms();
		v->lbd_flows = r->status->flows;
		if (r->status->sync) {
			int ready = r->status->sync->ready;
			if (ready != v->sync_ready)
				log_info("connection sync %s: %s preempt", ready ? "ready" : "not ready",
					 ready ? "may" : "will not");
			v->sync_ready = ready;
			vrrp_fsm_set_can_preempt(&v->fsm, ready);
			snprintf(v->sync_state, sizeof(v->sync_state), "%s/%s", r->status->sync->state,
				 r->status->sync->bulk_state);
		}
		if (r->status->stopping != v->lbd_stopping) {
			v->lbd_stopping = r->status->stopping;
			if (v->lbd_stopping)
				log_info("lbd is stopping: handing the VIPs over");
			stopping_changed = 1;
		}
		/* lbd confirmed the mode we asked for. */
		if (r->status->active == v->lbd_want_active)
			v->lbd_garp_pending = 0;
	} else {
		log_rl(LOG_LVL_WARN, "lbd refused the mode change: %s", r->error);
		v->lbd_failures++;
	}
	int again = r->ok && r->status && (r->status->active != v->lbd_want_active || v->lbd_garp_pending);
	dsrlb__lbd_response__free_unpacked(r, NULL);
	return (stopping_changed ? LBDLINK_JUDGE : 0) | (again ? LBDLINK_PUSH : 0);
}

void lbdlink_init(struct vrrpd *v, ipc_reply_cb on_reply)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/lbd.sock", v->run_dir);
	v->lbd = ipc_client_create(v->loop, path, on_reply, v);
	if (!v->lbd)
		fatal("out of memory");
	/* Its own socket for SIOCGIFFLAGS, independent of the heartbeat socket and its filter; of the
	 * nodes' family, which the host is sure to have. */
	v->ioctl_fd = socket(ipaddr_family(&v->self.addr), SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (v->ioctl_fd < 0)
		fatal("socket: %s", strerror(errno));
	v->lbd_last_ok_ms = clock_ms();
}

void lbdlink_close(struct vrrpd *v)
{
	ipc_client_destroy(v->lbd);
	v->lbd = NULL;
	if (v->ioctl_fd >= 0)
		close(v->ioctl_fd);
	v->ioctl_fd = -1;
}

/* Sends the wanted mode now unless a request is still in flight (the tick will send it then). */
void lbdlink_push(struct vrrpd *v)
{
	Dsrlb__LbdRequest q = DSRLB__LBD_REQUEST__INIT;
	uint8_t buf[128];
	size_t len;

	if (ipc_client_busy(v->lbd))
		return;
	q.cmd = DSRLB__LBD_CMD__LBD_CMD_SET_MODE;
	q.active = v->lbd_want_active;
	q.fence_ms = v->cfg->fence_ms;
	q.garp = v->lbd_garp_pending;
	q.release_ms = v->lbd_want_active ? 0 : v->lbd_release_ms;
	q.sent_ms = clock_ms();
	len = dsrlb__lbd_request__pack(&q, buf);
	ipc_client_send(v->lbd, buf, len, (int)v->cfg->lbd_timeout_ms);
}

static int lbdlink_link_up(struct vrrpd *v)
{
	struct ifreq ifr;
	int up = 0;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", v->cfg->interface);
	if (ioctl(v->ioctl_fd, SIOCGIFFLAGS, &ifr) == 0)
		up = (ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags & IFF_RUNNING);
	return up;
}

/* Feeds the state machine what we know of lbd and the link, and returns its decision. A stopping lbd
 * that still answers is a release (hand the VIPs over, keep forwarding meanwhile), not a fault. */
unsigned lbdlink_judge(struct vrrpd *v)
{
	uint64_t now = clock_ms();
	const char *why = NULL;
	int fault;

	v->link_up = lbdlink_link_up(v);
	/* Refused connections count only once lbd has answered: at start-up it may still be coming up. */
	v->lbd_healthy = (v->lbd_failures < 2 || !v->lbd_ever_ok) && now - v->lbd_last_ok_ms <= v->cfg->lbd_timeout_ms;
	if (!v->link_up)
		why = "LAN link down";
	else if (!v->lbd_healthy)
		why = "lbd not answering";
	else if (v->lbd_stopping)
		why = "lbd stopping";
	fault = why != NULL;
	if (fault != (v->fault_reason[0] != 0)) {
		if (fault)
			log_warn("fault: %s", why);
		else
			log_info("fault cleared");
	}
	snprintf(v->fault_reason, sizeof(v->fault_reason), "%s", why ? why : "");
	if (fault && v->link_up && v->lbd_healthy)
		return vrrp_fsm_release(&v->fsm, now);
	return vrrp_fsm_fault(&v->fsm, fault, now);
}
