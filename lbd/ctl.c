/* lbd's control socket: status, flows, mode changes from vrrpd, drain, reload. Requests are
 * LbdRequest protobufs; a request that does not unpack closes that client and is counted. Status and
 * flows need read rights, everything else the right to change state (common/ctlauth.c); a request
 * without them is answered with the refusal and counted. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "announce.h"
#include "clock.h"
#include "control.pb-c.h"
#include "ctlauth.h"
#include "ipaddr.h"
#include "ipc.h"
#include "lbd.h"
#include "log.h"

static char *ctl_strdup(const char *s)
{
	char *d = strdup(s);
	return d ? d : (char *)protobuf_c_empty_string;
}

/* Dotted quad, or RFC 5952 text for IPv6. */
static char *ctl_addr(const struct ipaddr *a)
{
	char buf[IPADDR_STRLEN];

	return ctl_strdup(ipaddr_str(a, buf));
}

/* "address:port" of a flow's end, port in network order: "[2001:db8::1]:80" for IPv6 (RFC 5952 section 6). */
static char *ctl_addr_port(const struct ipaddr *a, uint16_t port_n)
{
	char buf[IPADDR_PORT_STRLEN];

	return ctl_strdup(ipaddr_port_str(a, ntohs(port_n), buf));
}

static char *ctl_mac(const uint8_t *m)
{
	char buf[18];
	snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return ctl_strdup(buf);
}

static void ctl_free_str(char *s)
{
	if (s && s != protobuf_c_empty_string)
		free(s);
}

static const char *ctl_backend_state(const struct lbd_backend *b)
{
	if (!b->healthy)
		return "down";
	if (b->draining || b->weight == 0)
		return "draining";
	if (!b->mac_known)
		return "no-mac";
	return "up";
}

static void ctl_fill_counters(struct lbd *l, Dsrlb__Counters *c)
{
	struct ring_stats rs;
	struct lbd_counters ctr;
	struct ipc_server_stats is;

	worker_ring_stats(l, &rs);
	worker_counters(l, &ctr);
	c->rx_frames = ctr.rx_frames;
	c->forwarded = ctr.forwarded;
	c->tx_bytes = ctr.tx_bytes;
	c->ring_drops = rs.rx_drops;
	c->tx_ring_full = rs.tx_full;
	c->tx_wrong_format = rs.tx_wrong_format;
	c->tx_kicks = rs.tx_kicks;
	c->drop_standby = ctr.drop_standby;
	c->drop_no_service = ctr.drop_no_service;
	c->drop_no_backend = ctr.drop_no_backend;
	c->drop_malformed = ctr.drop_malformed;
	c->drop_not_ipv4 = ctr.drop_not_ipv4;
	c->drop_ipv6_ext = ctr.drop_ipv6_ext;
	c->drop_other = ctr.drop_other;
	c->drop_vlan = ctr.drop_vlan;
	c->drop_not_for_us = ctr.drop_not_for_us;
	c->arp_replies = ctr.arp_replies;
	c->garp_sent = ctr.garp_sent;
	c->nd_adverts_sent = ctr.nd_adverts_sent;
	c->unsolicited_na_sent = ctr.unsolicited_na_sent;
	c->stale_mode_refused = ctr.stale_mode_refused;
	c->icmp_echo_replies = ctr.icmp_echo_replies;
	c->icmp_errors_forwarded = ctr.icmp_errors_forwarded;
	c->fragments = ctr.fragments;
	c->flow_table_full = ctr.flow_table_full;
	c->flows_created = ctr.flows_created;
	c->flows_expired = ctr.flows_expired;
	ipc_server_stats(l->ctl, &is);
	c->ctl_bad_requests = is.bad_requests;
	c->ctl_refused = is.refused;
	c->ctl_idle_closed = is.idle_closed;
	c->ctl_evicted = is.evicted;
	c->ctl_oversized = is.oversized;
	c->backend_arp_for_vip = ctr.backend_arp_for_vip;
	c->flows_rescheduled = ctr.flows_rescheduled;
	c->arp_mac_changes = ctr.arp_mac_changes;
	c->arp_mac_refused = ctr.arp_mac_refused;
	c->maglev_rebuilds = ctr.maglev_rebuilds;
	c->frag_unmatched = ctr.frag_unmatched;
	c->arp_requests_sent = ctr.arp_requests_sent;
	c->health_waited = health_waited(l->health);
	c->vip_frames = ctr.vip_frames;
}

/* mode = ecmp: each VIP's route, as announce.c last judged it. */
static void ctl_announce_fill(struct lbd *l, Dsrlb__LbdStatus *st)
{
	const struct announce *a = l->announce;

	st->cluster_mode = ctl_strdup(l->cfg->mode == CFG_MODE_ECMP ? "ecmp" : "pair");
	st->announced = l->announced;
	st->announce_why = ctl_strdup(l->announce_why);
	if (!a)
		return;
	st->draining = a->draining;
	st->announcements = calloc(a->n_vips ? a->n_vips : 1, sizeof(*st->announcements));
	for (size_t i = 0; st->announcements && i < a->n_vips; i++) {
		Dsrlb__VipAnnouncement *pa = calloc(1, sizeof(*pa));
		if (!pa)
			break;
		dsrlb__vip_announcement__init(pa);
		pa->vip = ctl_addr(&a->vips[i].vip);
		pa->announced = a->vips[i].installed;
		pa->why = ctl_strdup(a->vips[i].why);
		st->announcements[st->n_announcements++] = pa;
	}
}

static Dsrlb__Backend *ctl_backend(struct lbd *l, uint16_t slot, uint64_t now)
{
	struct lbd_backend *b = &l->slots[slot];
	Dsrlb__Backend *pb = calloc(1, sizeof(*pb));
	const struct health_stats *hs;

	if (!pb)
		return NULL;
	dsrlb__backend__init(pb);
	pb->address = ctl_addr(&b->addr);
	pb->mac = b->mac_known ? ctl_mac(b->mac) : ctl_strdup("");
	pb->weight = b->weight;
	pb->healthy = b->healthy;
	pb->draining = b->draining || b->weight == 0;
	pb->flows = worker_slot_flows(l, slot);
	pb->forwarded = worker_slot_forwarded(l, slot, &pb->forwarded_bytes);
	pb->state = ctl_strdup(ctl_backend_state(b));
	pb->answers_vip_arp = b->answers_vip_arp;
	pb->check_result = ctl_strdup(health_last_result(l->health, slot));
	hs = health_slot_stats(l->health, slot);
	pb->last_change_ms_ago = -1;
	if (hs) {
		pb->checks = hs->checks;
		pb->check_failures = hs->failures;
		if (hs->last_change_ms)
			pb->last_change_ms_ago = (int64_t)(now - hs->last_change_ms);
	}
	return pb;
}

static void ctl_backend_free(Dsrlb__Backend *pb)
{
	if (!pb)
		return;
	ctl_free_str(pb->address);
	ctl_free_str(pb->mac);
	ctl_free_str(pb->state);
	ctl_free_str(pb->check_result);
	free(pb);
}

/* Builds the status message; ctl_status_free releases what this allocated. A brief status (the answer
 * to vrrpd's SET_MODE, every advert interval) leaves out the services and counters: those take each
 * worker's lock many times, and the answer needs only the mode, the flow count and the sync state. */
static void ctl_status_fill(struct lbd *l, Dsrlb__LbdStatus *st, Dsrlb__Counters *c, Dsrlb__SyncStatus *ss,
			    int brief)
{
	uint64_t now = clock_ms();

	st->node = ctl_strdup(l->node);
	st->active = l->active;
	st->mode_reason = ctl_strdup(mode_reason_str(l->reason));
	st->uptime_ms = now - l->start_ms;
	st->n_vips = l->n_vips;
	st->vips = calloc(l->n_vips ? l->n_vips : 1, sizeof(char *));
	for (size_t i = 0; st->vips && i < l->n_vips; i++)
		st->vips[i] = ctl_addr(&l->vips[i]);
	if (!st->vips)
		st->n_vips = 0;
	st->services = brief ? NULL : calloc(l->n_services ? l->n_services : 1, sizeof(*st->services));
	for (size_t i = 0; st->services && i < l->n_services; i++) {
		struct lbd_service *s = &l->services[i];
		Dsrlb__Service *ps = calloc(1, sizeof(*ps));
		if (!ps)
			break;
		dsrlb__service__init(ps);
		ps->name = ctl_strdup(s->name);
		ps->vip = ctl_addr(&s->vip);
		ps->port = ntohs(s->port);
		ps->protocol = ctl_strdup(s->proto == IPPROTO_UDP ? "udp" : "tcp");
		ps->all_down = s->n_usable == 0;
		ps->backends = calloc(s->n_slots ? s->n_slots : 1, sizeof(*ps->backends));
		for (size_t j = 0; ps->backends && j < s->n_slots; j++) {
			Dsrlb__Backend *pb = ctl_backend(l, s->slots[j], now);
			if (!pb)
				break;
			ps->backends[ps->n_backends++] = pb;
		}
		if (s->sorry_slot != LBD_NO_SLOT)
			ps->sorry_backend = ctl_backend(l, s->sorry_slot, now);
		for (size_t j = 0; j < ps->n_backends; j++)
			ps->forwarded += ps->backends[j]->forwarded;
		if (ps->sorry_backend)
			ps->forwarded += ps->sorry_backend->forwarded;
		st->services[st->n_services++] = ps;
	}
	st->flows = worker_flow_count(l);
	st->flow_max = (uint64_t)flow_max(l->workers[0].flows) * l->n_workers;
	st->flow_bytes = flow_bytes_per_flow(l->workers[0].flows);
	if (!brief) {
		ctl_fill_counters(l, c);
		st->counters = c;
	}
	st->config_digest.data = l->cfg->digest;
	st->config_digest.len = sizeof(l->cfg->digest);
	st->interface = ctl_strdup(l->cfg->interface);
	st->mac = ctl_mac(l->mac);
	st->workers = l->n_workers;
	st->fence_remaining_ms = l->fence_deadline_ms > now ? (uint32_t)(l->fence_deadline_ms - now) : 0;
	st->stopping = l->stopping;
	st->release_remaining_ms = l->release_until_ms > now ? (uint32_t)(l->release_until_ms - now) : 0;
	st->config_file = ctl_strdup(l->cfg_path);
	st->reloads = l->reloads;
	st->last_reload_error = ctl_strdup(l->last_reload_error);
	sync_status(l->sync, ss);
	st->sync = ss;
	ctl_announce_fill(l, st);
}

static void ctl_status_free(Dsrlb__LbdStatus *st)
{
	for (size_t i = 0; i < st->n_vips; i++)
		ctl_free_str(st->vips[i]);
	free(st->vips);
	for (size_t i = 0; i < st->n_services; i++) {
		Dsrlb__Service *ps = st->services[i];
		for (size_t j = 0; j < ps->n_backends; j++)
			ctl_backend_free(ps->backends[j]);
		ctl_backend_free(ps->sorry_backend);
		free(ps->backends);
		ctl_free_str(ps->name);
		ctl_free_str(ps->vip);
		ctl_free_str(ps->protocol);
		free(ps);
	}
	free(st->services);
	for (size_t i = 0; i < st->n_announcements; i++) {
		ctl_free_str(st->announcements[i]->vip);
		ctl_free_str(st->announcements[i]->why);
		free(st->announcements[i]);
	}
	free(st->announcements);
	ctl_free_str(st->cluster_mode);
	ctl_free_str(st->announce_why);
	ctl_free_str(st->node);
	ctl_free_str(st->mode_reason);
	ctl_free_str(st->interface);
	ctl_free_str(st->mac);
	ctl_free_str(st->config_file);
	ctl_free_str(st->last_reload_error);
}

static void ctl_flows_fill(struct lbd *l, Dsrlb__LbdResponse *r, uint32_t limit)
{
	uint64_t now = clock_ms();
	uint32_t n = 0;
	struct flow *f;

	if (!limit || limit > 100000)
		limit = 100000;
	r->flows_total = worker_flow_count(l);
	r->flows = calloc(limit, sizeof(*r->flows));
	if (!r->flows)
		return;
	for (unsigned wi = 0; wi < l->n_workers && n < limit; wi++) {
		struct lbd_worker *w = &l->workers[wi];
		uint32_t cursor = 0;
		worker_lock(w);
		while (n < limit && (f = flow_next(w->flows, &cursor))) {
			Dsrlb__Flow *pf = calloc(1, sizeof(*pf));
			struct flow_key k;
			if (!pf)
				break;
			dsrlb__flow__init(pf);
			flow_key_of(w->flows, f, &k);
			pf->client = ctl_addr_port(&k.saddr, k.sport);
			pf->vip = ctl_addr_port(&k.daddr, k.dport);
			pf->protocol = ctl_strdup(k.proto == IPPROTO_UDP ? "udp" : "tcp");
			if (f->backend < LBD_MAX_SLOTS && !ipaddr_is_none(&l->slots[f->backend].addr)) {
				pf->backend = ctl_addr(&l->slots[f->backend].addr);
				pf->service = ctl_strdup(l->services[l->slots[f->backend].service].name);
			} else {
				pf->backend = ctl_strdup("");
				pf->service = ctl_strdup("");
			}
			pf->state = ctl_strdup(flow_state_name(f->state));
			pf->idle_ms = flow_idle_ms(w->flows, f, now);
			/* Until the flow's idle timeout; the expiry pass removes it within a pass after that. */
			uint32_t to = flow_timeout_ms(&l->timeouts, f->state);
			pf->expires_ms = pf->idle_ms < to ? to - pf->idle_ms : 0;
			r->flows[n++] = pf;
		}
		worker_unlock(w);
	}
	r->n_flows = n;
}

static void ctl_flows_free(Dsrlb__LbdResponse *r)
{
	for (size_t i = 0; i < r->n_flows; i++) {
		Dsrlb__Flow *pf = r->flows[i];
		ctl_free_str(pf->client);
		ctl_free_str(pf->vip);
		ctl_free_str(pf->protocol);
		ctl_free_str(pf->backend);
		ctl_free_str(pf->service);
		ctl_free_str(pf->state);
		free(pf);
	}
	free(r->flows);
}

/* vrrpd's SET_MODE active is a lease: active until fence_ms after vrrpd sent it (sent_ms, the host's
 * CLOCK_MONOTONIC), unless renewed. One that waited in the socket longer than that, while lbd was stopped
 * or starved, grants nothing: meanwhile vrrpd has judged lbd dead and the peer has taken the VIPs, and
 * obeying would take them back with a gratuitous ARP burst until the fresh request behind it arrives.
 * Standby is always obeyed. */
static int ctl_set_mode(struct lbd *l, const Dsrlb__LbdRequest *q, char *err, size_t errlen)
{
	uint32_t fence_ms = q->fence_ms;

	if (q->active && q->fence_ms && q->sent_ms) {
		uint64_t now = clock_ms();
		uint64_t age = now > q->sent_ms ? now - q->sent_ms : 0;

		if (age >= q->fence_ms) {
			l->ctr.stale_mode_refused++;
			log_rl(LOG_LVL_WARN, "refused vrrpd's request to go active: it waited %llu ms, longer than "
			       "its fence of %u ms", (unsigned long long)age, q->fence_ms);
			snprintf(err, errlen, "stale: sent %llu ms ago, fence %u ms", (unsigned long long)age,
				 q->fence_ms);
			return -1;
		}
		fence_ms = q->fence_ms - (uint32_t)age;
	}
	mode_set(l, q->active, q->fence_ms ? LBD_REASON_VRRPD : LBD_REASON_OPERATOR, fence_ms, q->garp, q->release_ms);
	return 0;
}

static void ctl_drain(struct lbd *l, const Dsrlb__LbdRequest *q, int on, Dsrlb__LbdResponse *r, char *err,
		      size_t errlen)
{
	struct lbd_service *s = dp_find_service(l, q->service);
	struct ipaddr a;
	struct lbd_backend *b;
	char as[IPADDR_STRLEN];

	if (!s) {
		snprintf(err, errlen, "no service named '%s'", q->service);
		return;
	}
	/* Either family, in any spelling of the address: "2001:DB8:0::1" names the backend 2001:db8::1. */
	if (ipaddr_parse(q->backend, &a) < 0 || !(b = dp_find_backend(l, s, &a))) {
		snprintf(err, errlen, "service %s has no backend '%s'", s->name, q->backend);
		return;
	}
	dp_write_lock(l);
	b->draining = (uint8_t)on;
	dp_rebuild_service(l, s);
	dp_write_unlock(l);
	log_info("backend %s of %s %s", ipaddr_str(&a, as), s->name, on ? "draining" : "back in service");
	r->ok = 1;
}

/* The rights a command needs, and what it does in a refusal's words. Unknown commands need read
 * rights to be told they are unknown. */
static enum ipc_access ctl_need(int cmd, const char **what)
{
	switch (cmd) {
	case DSRLB__LBD_CMD__LBD_CMD_STATUS: *what = "read lbd's status"; return IPC_ACCESS_READ;
	case DSRLB__LBD_CMD__LBD_CMD_FLOWS: *what = "list flows"; return IPC_ACCESS_READ;
	case DSRLB__LBD_CMD__LBD_CMD_SET_MODE: *what = "set lbd's mode"; return IPC_ACCESS_CHANGE;
	case DSRLB__LBD_CMD__LBD_CMD_DRAIN: *what = "drain a backend"; return IPC_ACCESS_CHANGE;
	case DSRLB__LBD_CMD__LBD_CMD_UNDRAIN: *what = "undrain a backend"; return IPC_ACCESS_CHANGE;
	case DSRLB__LBD_CMD__LBD_CMD_RELOAD: *what = "reload lbd"; return IPC_ACCESS_CHANGE;
	case DSRLB__LBD_CMD__LBD_CMD_GARP: *what = "send gratuitous ARP"; return IPC_ACCESS_CHANGE;
	case DSRLB__LBD_CMD__LBD_CMD_DRAIN_NODE: *what = "drain the node"; return IPC_ACCESS_CHANGE;
	case DSRLB__LBD_CMD__LBD_CMD_UNDRAIN_NODE: *what = "undrain the node"; return IPC_ACCESS_CHANGE;
	default: *what = "use lbd's control socket"; return IPC_ACCESS_READ;
	}
}

static int ctl_handle(void *arg, const struct ipc_peer *peer, const uint8_t *req, size_t len, uint8_t **resp,
		      size_t *resp_len)
{
	struct lbd *l = arg;
	Dsrlb__LbdRequest *q = dsrlb__lbd_request__unpack(NULL, len, req);
	Dsrlb__LbdResponse r = DSRLB__LBD_RESPONSE__INIT;
	Dsrlb__LbdStatus st = DSRLB__LBD_STATUS__INIT;
	Dsrlb__Counters c = DSRLB__COUNTERS__INIT;
	Dsrlb__SyncStatus ss = DSRLB__SYNC_STATUS__INIT;
	char err[300] = "";
	int with_status = 0, brief = 0, rc = 0;
	const char *what = "";

	if (!q)
		return -1;
	if (ctlauth_check(l->cfg, peer, ctl_need(q->cmd, &what), what, err, sizeof(err)) < 0) {
		rc = IPC_REFUSED;
		q->cmd = DSRLB__LBD_CMD__LBD_CMD_NONE;
	}
	switch (q->cmd) {
	case DSRLB__LBD_CMD__LBD_CMD_STATUS:
		with_status = 1;
		r.ok = 1;
		break;
	case DSRLB__LBD_CMD__LBD_CMD_FLOWS:
		ctl_flows_fill(l, &r, q->limit);
		r.ok = 1;
		break;
	case DSRLB__LBD_CMD__LBD_CMD_SET_MODE:
		if (l->standalone) {
			snprintf(err, sizeof(err), "lbd runs --standalone: its mode is fixed");
			break;
		}
		if (l->announce) {
			snprintf(err, sizeof(err), "mode = ecmp: lbd always forwards and vrrpd is not used; "
				 "lbctl drain-node withdraws the node");
			break;
		}
		r.ok = ctl_set_mode(l, q, err, sizeof(err)) == 0;
		with_status = brief = r.ok;
		break;
	case DSRLB__LBD_CMD__LBD_CMD_DRAIN:
	case DSRLB__LBD_CMD__LBD_CMD_UNDRAIN:
		ctl_drain(l, q, q->cmd == DSRLB__LBD_CMD__LBD_CMD_DRAIN, &r, err, sizeof(err));
		break;
	case DSRLB__LBD_CMD__LBD_CMD_RELOAD:
		r.ok = lbd_reload(l, err, sizeof(err)) == 0;
		break;
	case DSRLB__LBD_CMD__LBD_CMD_DRAIN_NODE:
	case DSRLB__LBD_CMD__LBD_CMD_UNDRAIN_NODE:
		if (!l->announce) {
			snprintf(err, sizeof(err), "drain-node and undrain-node are for mode = ecmp; this node runs "
				 "mode = pair, where stopping vrrpd or lbd hands the VIPs to the peer");
			break;
		}
		announce_drain(l->announce, q->cmd == DSRLB__LBD_CMD__LBD_CMD_DRAIN_NODE);
		with_status = 1;
		r.ok = 1;
		break;
	case DSRLB__LBD_CMD__LBD_CMD_GARP:
		if (l->owner) {
			arptx_garp_burst(l);
			r.ok = 1;
		} else {
			snprintf(err, sizeof(err), "not active");
		}
		break;
	default:
		if (!rc)
			snprintf(err, sizeof(err), "unknown command %d", q->cmd);
		break;
	}
	dsrlb__lbd_request__free_unpacked(q, NULL);
	if (with_status) {
		ctl_status_fill(l, &st, &c, &ss, brief);
		r.status = &st;
	}
	r.error = err;
	*resp_len = dsrlb__lbd_response__get_packed_size(&r);
	*resp = malloc(*resp_len ? *resp_len : 1);
	if (*resp)
		dsrlb__lbd_response__pack(&r, *resp);
	else
		*resp_len = 0;
	if (with_status)
		ctl_status_free(&st);
	ctl_flows_free(&r);
	return rc;
}

static enum ipc_access ctl_access(void *arg, const struct ipc_cred *cred)
{
	struct lbd *l = arg;

	return ctlauth_access(l->cfg, cred);
}

int ctl_open(struct lbd *l)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/lbd.sock", l->run_dir);
	l->ctl = ipc_server_create(l->loop, path, ctl_access, ctl_handle, l);
	return l->ctl ? 0 : -1;
}

void ctl_close(struct lbd *l)
{
	ipc_server_destroy(l->ctl);
	l->ctl = NULL;
}
