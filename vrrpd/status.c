/* vrrpd's control socket: status (this node's election state and the peer as last heard) and
 * reload. Garbage closes that client, nothing more. Status needs read rights, reload the right to
 * change state (common/ctlauth.c); a request without them is answered with the refusal and counted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "control.pb-c.h"
#include "ctlauth.h"
#include "log.h"
#include "vrrpd.h"

static int status_handle(void *arg, const struct ipc_peer *peer, const uint8_t *req, size_t len, uint8_t **resp,
			 size_t *resp_len)
{
	struct vrrpd *v = arg;
	Dsrlb__VrrpRequest *q = dsrlb__vrrp_request__unpack(NULL, len, req);
	Dsrlb__VrrpResponse r = DSRLB__VRRP_RESPONSE__INIT;
	Dsrlb__VrrpStatus st = DSRLB__VRRP_STATUS__INIT;
	Dsrlb__PeerStatus ps = DSRLB__PEER_STATUS__INIT;
	Dsrlb__RejectCounters rej = DSRLB__REJECT_COUNTERS__INIT;
	char addr[IPADDR_STRLEN], paddr[IPADDR_STRLEN], err[300] = "";
	char vipbuf[CFG_MAX_SERVICES][IPADDR_STRLEN];
	char *vips[CFG_MAX_SERVICES], *warnings[4];
	char warnbuf[4][160];
	struct ipc_server_stats is;
	uint64_t now = clock_ms();
	int cmd, rc = 0;

	if (!q)
		return -1;
	cmd = q->cmd;
	dsrlb__vrrp_request__free_unpacked(q, NULL);
	if (ctlauth_check(v->cfg, peer, cmd == DSRLB__VRRP_CMD__VRRP_CMD_RELOAD ? IPC_ACCESS_CHANGE : IPC_ACCESS_READ,
			  cmd == DSRLB__VRRP_CMD__VRRP_CMD_RELOAD ? "reload vrrpd" :
			  cmd == DSRLB__VRRP_CMD__VRRP_CMD_STATUS ? "read vrrpd's status" : "use vrrpd's control socket",
			  err, sizeof(err)) < 0) {
		rc = IPC_REFUSED;
	} else if (cmd == DSRLB__VRRP_CMD__VRRP_CMD_RELOAD) {
		r.ok = vrrpd_reload(v, err, sizeof(err)) == 0;
	} else if (cmd == DSRLB__VRRP_CMD__VRRP_CMD_STATUS) {
		enum vrrp_state s = vrrp_fsm_state(&v->fsm);
		const struct vrrpd_peer *p = &v->peer_info;
		/* The peer counts as alive as long as we would not yet declare it down ourselves. */
		int peer_fresh = p->heard && now - p->last_heard_ms <= vrrp_fsm_master_down_ms(&v->fsm);
		size_t nw = 0;

		r.ok = 1;
		st.node = v->node;
		st.state = (char *)(vrrp_fsm_stopping(&v->fsm) ? "MASTER" : vrrp_state_name(s));
		st.priority = v->self.priority;
		st.effective_priority = vrrp_fsm_advert_priority(&v->fsm);
		ipaddr_str(&v->self.addr, addr);
		st.address = addr;
		st.advert_interval_ms = v->cfg->advert_interval_ms;
		st.master_down_ms = vrrp_fsm_master_down_ms(&v->fsm);
		st.preempt = v->cfg->preempt;
		st.lbd_healthy = v->lbd_healthy;
		st.link_up = v->link_up;
		st.fault_reason = v->fault_reason;
		st.adverts_sent = v->adverts_sent;
		st.adverts_received = v->adverts_received;
		st.transitions = v->transitions;
		st.config_digest.data = v->cfg->digest;
		st.config_digest.len = CFG_DIGEST_LEN;
		st.uptime_ms = now - v->start_ms;
		st.stopping = v->stopping;
		st.lbd_stopping = v->lbd_stopping;
		rej.malformed = v->rej.malformed;
		rej.bad_mac = v->rej.bad_mac;
		rej.replay = v->rej.replay;
		rej.unknown_node = v->rej.unknown_node;
		rej.unknown_key = v->rej.unknown_key;
		rej.stale_epoch = v->rej.stale_epoch;
		rej.kernel_dropped = v->rej.kernel_dropped;
		st.rejected = &rej;
		ipc_server_stats(v->ctl, &is);
		st.ctl_bad_requests = is.bad_requests;
		st.ctl_refused = is.refused;
		st.ctl_idle_closed = is.idle_closed;
		st.ctl_evicted = is.evicted;
		st.ctl_oversized = is.oversized;
		if (v->have_peer) {
			ps.name = v->peer.name;
			ipaddr_str(&v->peer.addr, paddr);
			ps.address = paddr;
			ps.state = (char *)(!p->heard ? "UNKNOWN" : peer_fresh ? vrrp_state_name((enum vrrp_state)p->state) : "SILENT");
			ps.priority = p->priority;
			ps.last_heard_ms = p->heard ? (int64_t)(now - p->last_heard_ms) : -1;
			ps.digest_match = p->digest_match;
			ps.lbd_healthy = p->lbd_healthy;
			ps.flows = p->flows;
			ps.advert_interval_ms = p->advert_ms;
			ps.stopping = peer_fresh && p->stopping;
			for (size_t i = 0; i < p->n_vips; i++) {
				ipaddr_str(&p->vips[i], vipbuf[i]);
				vips[i] = vipbuf[i];
			}
			ps.vips = vips;
			ps.n_vips = p->n_vips;
			st.peer = &ps;
		}
		if (s == VRRP_MASTER)
			st.master = v->node;
		else if (v->have_peer && peer_fresh && p->state == VRRP_MASTER)
			st.master = v->peer.name;
		if (s == VRRP_MASTER && peer_fresh && p->state == VRRP_MASTER && !vrrp_fsm_stopping(&v->fsm))
			snprintf(warnbuf[nw++], sizeof(warnbuf[0]), "split brain: both nodes claim MASTER");
		if (v->have_peer && p->heard && !p->digest_match)
			snprintf(warnbuf[nw++], sizeof(warnbuf[0]), "the peer's config differs from ours");
		if (v->have_peer && !peer_fresh)
			snprintf(warnbuf[nw++], sizeof(warnbuf[0]), "no heartbeat from peer %s", v->peer.name);
		if (v->fault_reason[0])
			snprintf(warnbuf[nw++], sizeof(warnbuf[0]), "fault: %s", v->fault_reason);
		for (size_t i = 0; i < nw; i++)
			warnings[i] = warnbuf[i];
		st.warnings = warnings;
		st.n_warnings = nw;
		r.status = &st;
	} else {
		snprintf(err, sizeof(err), "unknown command %d", cmd);
	}
	r.error = err;
	*resp_len = dsrlb__vrrp_response__get_packed_size(&r);
	*resp = malloc(*resp_len ? *resp_len : 1);
	if (!*resp)
		return -1;
	dsrlb__vrrp_response__pack(&r, *resp);
	return rc;
}

static enum ipc_access status_access(void *arg, const struct ipc_cred *cred)
{
	struct vrrpd *v = arg;

	return ctlauth_access(v->cfg, cred);
}

int status_open(struct vrrpd *v)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/vrrpd.sock", v->run_dir);
	v->ctl = ipc_server_create(v->loop, path, status_access, status_handle, v);
	return v->ctl ? 0 : -1;
}

void status_close(struct vrrpd *v)
{
	ipc_server_destroy(v->ctl);
	v->ctl = NULL;
}
