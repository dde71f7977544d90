/* lbd's and vrrpd's status answers as Prometheus metrics. Conventions: the dsrlb_ prefix, _total on
 * counters, seconds and bytes as units, what varies (reason, state, service, backend) in labels.
 * Families that both daemons feed (uptime, control socket) are written once with a `daemon` label. */
#include <stdio.h>
#include <string.h>

#include "metrics.h"

/* lbd's Counters, field by field. Families with a label list their fields together, the first entry
 * carrying the help text. Control-socket fields are rendered with vrrpd's (metrics_control). */
static const struct metrics_ctr {
	const char *field, *family, *label, *value, *help;
} metrics_ctrs[] = {
	{ "rx_frames", "dsrlb_rx_frames_total", NULL, NULL,
	  "Frames lbd's RX ring delivered (VIP traffic and ARP)." },
	{ "forwarded", "dsrlb_forwarded_frames_total", NULL, NULL, "Frames forwarded to backends." },
	{ "vip_frames", "dsrlb_vip_frames_total", NULL, NULL,
	  "IP frames to a VIP and to this node's MAC (mode = ecmp: shows when the router stops sending)." },
	{ "tx_bytes", "dsrlb_forwarded_bytes_total", NULL, NULL, "Bytes of the frames forwarded to backends." },
	{ "drop_standby", "dsrlb_dropped_frames_total", "reason", "standby",
	  "Frames dropped on the packet path, by reason (docs/status.md)." },
	{ "drop_no_service", "dsrlb_dropped_frames_total", "reason", "no_service", NULL },
	{ "drop_no_backend", "dsrlb_dropped_frames_total", "reason", "no_backend", NULL },
	{ "drop_malformed", "dsrlb_dropped_frames_total", "reason", "malformed", NULL },
	{ "drop_not_ipv4", "dsrlb_dropped_frames_total", "reason", "not_ipv4", NULL },
	{ "drop_ipv6_ext", "dsrlb_dropped_frames_total", "reason", "ipv6_ext", NULL },
	{ "drop_vlan", "dsrlb_dropped_frames_total", "reason", "vlan", NULL },
	{ "drop_not_for_us", "dsrlb_dropped_frames_total", "reason", "not_for_us", NULL },
	{ "drop_other", "dsrlb_dropped_frames_total", "reason", "other", NULL },
	{ "frag_unmatched", "dsrlb_dropped_frames_total", "reason", "frag_unmatched", NULL },
	{ "ring_drops", "dsrlb_ring_dropped_frames_total", "reason", "rx_ring",
	  "Frames lost at the rings: RX ring full (kernel count), TX ring full, refused by the kernel on TX." },
	{ "tx_ring_full", "dsrlb_ring_dropped_frames_total", "reason", "tx_ring_full", NULL },
	{ "tx_wrong_format", "dsrlb_ring_dropped_frames_total", "reason", "tx_wrong_format", NULL },
	{ "tx_kicks", "dsrlb_tx_kicks_total", NULL, NULL, "TX ring flushes (send calls) of the workers." },
	{ "arp_replies", "dsrlb_arp_replies_total", NULL, NULL, "ARP replies lbd sent for its VIPs." },
	{ "garp_sent", "dsrlb_garp_sent_total", NULL, NULL, "Gratuitous ARPs lbd sent for its VIPs." },
	{ "nd_adverts_sent", "dsrlb_nd_adverts_sent_total", NULL, NULL,
	  "Neighbour Advertisements lbd sent answering solicitations for its IPv6 VIPs." },
	{ "unsolicited_na_sent", "dsrlb_unsolicited_na_sent_total", NULL, NULL,
	  "Unsolicited Neighbour Advertisements lbd sent for its IPv6 VIPs (takeover, refresh)." },
	{ "stale_mode_refused", "dsrlb_stale_mode_refused_total", NULL, NULL,
	  "Requests of vrrpd to go active that lbd refused: older than their fence." },
	{ "arp_requests_sent", "dsrlb_arp_requests_sent_total", NULL, NULL,
	  "ARP requests and Neighbour Solicitations lbd sent (backend resolution, VIP probes)." },
	{ "arp_mac_changes", "dsrlb_arp_mac_changes_total", NULL, NULL,
	  "Known backend MACs replaced (the old MAC silent for 1 s)." },
	{ "arp_mac_refused", "dsrlb_arp_mac_refused_total", NULL, NULL,
	  "ARP frames refused that claimed another MAC for a backend whose MAC is still heard." },
	{ "backend_arp_for_vip", "dsrlb_backend_arp_for_vip_total", NULL, NULL,
	  "ARP or NDP answers for a VIP from a backend (misconfigured for DSR)." },
	{ "icmp_echo_replies", "dsrlb_icmp_echo_replies_total", NULL, NULL, "ICMP echo requests to a VIP answered." },
	{ "icmp_errors_forwarded", "dsrlb_icmp_errors_forwarded_total", NULL, NULL,
	  "ICMP errors about a flow forwarded to its backend." },
	{ "fragments", "dsrlb_fragments_total", NULL, NULL, "IP fragments seen (IPv4 and IPv6)." },
	{ "flows_created", "dsrlb_flows_created_total", NULL, NULL, "Connection-table entries created." },
	{ "flows_expired", "dsrlb_flows_expired_total", NULL, NULL, "Connection-table entries expired." },
	{ "flows_rescheduled", "dsrlb_flows_rescheduled_total", NULL, NULL,
	  "Established flows moved off a backend that went down or away." },
	{ "flow_table_full", "dsrlb_flow_table_full_total", NULL, NULL,
	  "New flows not entered because the connection table was full (still forwarded by Maglev)." },
	{ "maglev_rebuilds", "dsrlb_maglev_rebuilds_total", NULL, NULL, "Maglev lookup tables built." },
	{ "health_waited", "dsrlb_health_waited_total", NULL, NULL,
	  "Health-check rounds that waited for a free probe slot." },
	{ "ctl_bad_requests", "", NULL, NULL, NULL },
	{ "ctl_refused", "", NULL, NULL, NULL },
	{ "ctl_idle_closed", "", NULL, NULL, NULL },
	{ "ctl_evicted", "", NULL, NULL, NULL },
	{ "ctl_oversized", "", NULL, NULL, NULL },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *metrics_counter_family(const char *field, const char **label, const char **value)
{
	for (size_t i = 0; i < NELEM(metrics_ctrs); i++) {
		if (strcmp(metrics_ctrs[i].field, field))
			continue;
		*label = metrics_ctrs[i].label;
		*value = metrics_ctrs[i].value;
		return metrics_ctrs[i].family;
	}
	return NULL;
}

static void metrics_gauge(struct prom *m, const char *name, const char *help, uint64_t v)
{
	prom_family(m, name, "gauge", help);
	prom_u64(m, NULL, v);
}

static void metrics_counter(struct prom *m, const char *name, const char *help, uint64_t v)
{
	prom_family(m, name, "counter", help);
	prom_u64(m, NULL, v);
}

static void metrics_seconds(struct prom *m, const char *name, const char *help, uint64_t ms)
{
	prom_family(m, name, "gauge", help);
	prom_ms(m, NULL, ms);
}

static void metrics_counters(struct prom *m, const Dsrlb__Counters *c)
{
	const ProtobufCMessageDescriptor *d = c->base.descriptor;
	const char *open = "";

	for (size_t i = 0; i < NELEM(metrics_ctrs); i++) {
		const struct metrics_ctr *e = &metrics_ctrs[i];
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, e->field);
		uint64_t v;

		if (!f || !e->family[0])
			continue;
		v = *(const uint64_t *)((const char *)c + f->offset);
		if (strcmp(open, e->family)) {
			prom_family(m, e->family, "counter", e->help);
			open = e->family;
		}
		prom_u64(m, e->label ? PROM_L(e->label, e->value) : NULL, v);
	}
}

/* Per service, then per backend (the sorry backend too): each family lists every service's samples. */
static void metrics_services(struct prom *m, const Dsrlb__LbdStatus *st)
{
	static const char *const backend_states[] = { "up", "down", "draining", "no-mac", NULL };
	char port[8];

	prom_family(m, "dsrlb_service_info", "gauge", "A configured service: its VIP, port and protocol (always 1).");
	for (size_t i = 0; i < st->n_services; i++) {
		const Dsrlb__Service *s = st->services[i];
		snprintf(port, sizeof(port), "%u", s->port);
		prom_u64(m, PROM_L("service", s->name, "vip", s->vip, "port", port, "protocol", s->protocol), 1);
	}
	prom_family(m, "dsrlb_service_forwarded_frames_total", "counter", "Frames of the service forwarded.");
	for (size_t i = 0; i < st->n_services; i++)
		prom_u64(m, PROM_L("service", st->services[i]->name), st->services[i]->forwarded);
	prom_family(m, "dsrlb_service_all_down", "gauge",
		    "1 when the service has no usable backend (traffic dropped or sent to the sorry backend).");
	for (size_t i = 0; i < st->n_services; i++)
		prom_u64(m, PROM_L("service", st->services[i]->name), st->services[i]->all_down);
	prom_family(m, "dsrlb_service_sorry_backend_info", "gauge",
		    "The sorry backend of a service, when one is configured (always 1).");
	for (size_t i = 0; i < st->n_services; i++)
		if (st->services[i]->sorry_backend)
			prom_u64(m, PROM_L("service", st->services[i]->name, "backend",
					   st->services[i]->sorry_backend->address), 1);

	/* One pass per family over every backend of every service, the sorry backend last. */
	static const struct {
		const char *name, *type, *help;
	} fams[] = {
		{ "dsrlb_backend_forwarded_frames_total", "counter", "Frames forwarded to the backend." },
		{ "dsrlb_backend_forwarded_bytes_total", "counter",
		  "Bytes of the frames forwarded to the backend, as received (Ethernet header included)." },
		{ "dsrlb_backend_flows", "gauge", "Connection-table entries on the backend now." },
		{ "dsrlb_backend_weight", "gauge", "Configured weight (0: drained by config)." },
		{ "dsrlb_backend_healthy", "gauge", "1 when the backend's health checks pass." },
		{ "dsrlb_backend_draining", "gauge", "1 when an operator drained the backend (no new flows)." },
		{ "dsrlb_backend_mac_resolved", "gauge", "1 when the backend's MAC address is known." },
		{ "dsrlb_backend_answers_vip_arp", "gauge",
		  "1 when the backend answers ARP (IPv6: NDP) for the VIP (misconfigured for DSR)." },
		{ "dsrlb_backend_health_checks_total", "counter", "Health checks run." },
		{ "dsrlb_backend_health_check_failures_total", "counter", "Health checks failed." },
		{ "dsrlb_backend_state", "gauge", "The backend's state: up, down, draining or no-mac (1 for the current one)." },
	};
	for (size_t k = 0; k < NELEM(fams); k++) {
		prom_family(m, fams[k].name, fams[k].type, fams[k].help);
		for (size_t i = 0; i < st->n_services; i++) {
			const Dsrlb__Service *s = st->services[i];
			for (size_t j = 0; j <= s->n_backends; j++) {
				const Dsrlb__Backend *b = j < s->n_backends ? s->backends[j] : s->sorry_backend;
				const char *const *l;
				uint64_t v;
				if (!b)
					continue;
				l = PROM_L("service", s->name, "backend", b->address);
				switch (k) {
				case 0: v = b->forwarded; break;
				case 1: v = b->forwarded_bytes; break;
				case 2: v = b->flows; break;
				case 3: v = b->weight; break;
				case 4: v = b->healthy; break;
				case 5: v = b->draining; break;
				case 6: v = b->mac[0] != '\0'; break;
				case 7: v = b->answers_vip_arp; break;
				case 8: v = b->checks; break;
				case 9: v = b->check_failures; break;
				default:
					prom_stateset(m, l, "state", backend_states, b->state);
					continue;
				}
				prom_u64(m, l, v);
			}
		}
	}
}

static void metrics_sync(struct prom *m, const Dsrlb__SyncStatus *y)
{
	static const char *const states[] = { "disabled", "connecting", "handshake", "partial", "established", NULL };
	static const char *const bulk[] = { "none", "requested", "receiving", "done", "timeout", NULL };

	prom_family(m, "dsrlb_sync_state", "gauge", "Connection-state sync session with the peer (1 for the current state).");
	prom_stateset(m, NULL, "state", states, y->state);
	metrics_gauge(m, "dsrlb_sync_peer_active", "1 when the sync peer says it is active.", y->peer_active);
	metrics_gauge(m, "dsrlb_sync_ready", "1 when this node's bulk sync is complete (or timed out).", y->ready);
	metrics_seconds(m, "dsrlb_sync_lag_seconds", "Newest flow update: queued here to acknowledged by the peer.",
			y->last_lag_ms);
	metrics_seconds(m, "dsrlb_sync_lag_p99_seconds",
			"p99 of the sync lag over the updates acknowledged in the last 5 s.", y->lag_p99_ms);
	metrics_gauge(m, "dsrlb_sync_lag_samples", "Updates acknowledged in the last 5 s (at most 4096).", y->lag_samples);
	prom_family(m, "dsrlb_sync_bulk_state", "gauge", "Bulk transfer of the peer's table to this node (1 for the current state).");
	prom_stateset(m, NULL, "state", bulk, y->bulk_state);
	metrics_gauge(m, "dsrlb_sync_bulk_received_flows", "Flows received in the current or last bulk transfer.",
		      y->bulk_received);
	metrics_gauge(m, "dsrlb_sync_bulk_expected_flows", "Flows the peer announced for the bulk transfer.",
		      y->bulk_total);
	metrics_seconds(m, "dsrlb_sync_bulk_duration_seconds", "How long the last bulk transfer took.",
			y->bulk_duration_ms);
	metrics_counter(m, "dsrlb_sync_sent_flows_total", "Flow updates sent to the peer.", y->sent_flows);
	metrics_counter(m, "dsrlb_sync_received_flows_total", "Flow updates received from the peer.", y->received_flows);
	metrics_counter(m, "dsrlb_sync_sent_messages_total", "Sync messages sent.", y->sent_messages);
	metrics_counter(m, "dsrlb_sync_received_messages_total", "Sync messages received.", y->received_messages);
	metrics_counter(m, "dsrlb_sync_bulk_sent_flows_total", "Flows sent to the peer in bulk transfers.", y->bulk_sent);
	metrics_counter(m, "dsrlb_sync_rejected_total", "Sealed sync frames that failed authentication, replay or parsing.",
			y->rejected);
	metrics_counter(m, "dsrlb_sync_dropped_total", "Flow updates not sent: peer slow or gone, buffer full.",
			y->dropped);
	metrics_counter(m, "dsrlb_sync_unknown_backend_total", "Received flows naming a backend this node does not have.",
			y->unknown_backend);
	metrics_counter(m, "dsrlb_sync_bad_flows_total", "Received flows refused: bad address lengths or mixed families.",
			y->bad_flows);
	metrics_counter(m, "dsrlb_sync_no_ipv6_table_total",
			"Received IPv6 flows dropped because this node's connection table is IPv4-only.", y->no_ipv6_table);
	metrics_counter(m, "dsrlb_sync_reconnects_total", "Sync sessions closed (peer gone, error, replaced, timed out).",
			y->reconnects);
	metrics_counter(m, "dsrlb_sync_refused_not_peer_total", "Connections to the sync port from another address.",
			y->refused_not_peer);
	metrics_counter(m, "dsrlb_sync_unauthenticated_total", "Sync connections closed before their first authentic message.",
			y->unauthenticated);
	metrics_counter(m, "dsrlb_sync_handshake_timeouts_total",
			"Of the unauthenticated connections, those closed at the handshake deadline.", y->handshake_timeouts);
	metrics_counter(m, "dsrlb_sync_oversized_total", "Sync connections closed for an oversized length prefix.",
			y->oversized);
}

/* The other nodes of the config, as this node's sync sessions see them (a mesh in mode = ecmp). */
static void metrics_peers(struct prom *m, const Dsrlb__SyncStatus *y)
{
	size_t i;

	if (y->n_peers == 0)
		return;
	prom_family(m, "dsrlb_sync_peer_established", "gauge", "1 while the sync session with this peer is established.");
	for (i = 0; i < y->n_peers; i++)
		prom_u64(m, PROM_L("peer", y->peers[i]->name), y->peers[i]->established);
	prom_family(m, "dsrlb_sync_peer_lag_p99_seconds", "gauge",
		    "p99 of the sync lag to this peer over the last 5 s.");
	for (i = 0; i < y->n_peers; i++)
		prom_ms(m, PROM_L("peer", y->peers[i]->name), y->peers[i]->lag_p99_ms);
	prom_family(m, "dsrlb_sync_peer_dropped_total", "counter", "Flow updates not sent to this peer (its buffer was full).");
	for (i = 0; i < y->n_peers; i++)
		prom_u64(m, PROM_L("peer", y->peers[i]->name), y->peers[i]->dropped);
	prom_family(m, "dsrlb_peer_forwarding", "gauge", "1 when the peer's last node state says it forwards.");
	for (i = 0; i < y->n_peers; i++)
		prom_u64(m, PROM_L("peer", y->peers[i]->name), y->peers[i]->forwarding);
	prom_family(m, "dsrlb_peer_announced", "gauge", "mode = ecmp: 1 when the peer says it announces its VIPs.");
	for (i = 0; i < y->n_peers; i++)
		prom_u64(m, PROM_L("peer", y->peers[i]->name), y->peers[i]->announced > 0);
	prom_family(m, "dsrlb_peer_config_match", "gauge", "1 when the peer's config digest equals this node's.");
	for (i = 0; i < y->n_peers; i++)
		prom_u64(m, PROM_L("peer", y->peers[i]->name), y->peers[i]->config_digest_match);
}

static void metrics_lbd(struct prom *m, const Dsrlb__LbdStatus *st)
{
	prom_family(m, "dsrlb_node_info", "gauge", "This node as lbd names it (always 1).");
	prom_u64(m, PROM_L("node", st->node, "interface", st->interface, "mac", st->mac), 1);
	metrics_gauge(m, "dsrlb_active", "1 when lbd owns the VIPs and forwards (the active node).", st->active);
	prom_family(m, "dsrlb_mode_info", "gauge",
		    "Why lbd is in its mode: startup, standalone, vrrpd, operator, fenced or ecmp (always 1).");
	prom_u64(m, PROM_L("reason", st->mode_reason), 1);
	metrics_gauge(m, "dsrlb_stopping", "1 when lbd is stopping and hands its VIPs over.", st->stopping);
	metrics_gauge(m, "dsrlb_announced", "mode = ecmp: 1 when every VIP's route is announced.", st->announced);
	metrics_gauge(m, "dsrlb_node_draining", "mode = ecmp: 1 after lbctl drain-node (withdrawn, still forwarding).",
		      st->draining);
	if (st->n_announcements) {
		prom_family(m, "dsrlb_vip_announced", "gauge", "mode = ecmp: 1 while this VIP's route is announced.");
		for (size_t i = 0; i < st->n_announcements; i++)
			prom_u64(m, PROM_L("vip", st->announcements[i]->vip), st->announcements[i]->announced);
	}
	metrics_seconds(m, "dsrlb_release_remaining_seconds",
			"Releasing the VIPs: forwarding this much longer without answering ARP.", st->release_remaining_ms);
	metrics_seconds(m, "dsrlb_fence_remaining_seconds",
			"Time before lbd goes standby by itself if vrrpd stays silent.", st->fence_remaining_ms);
	metrics_gauge(m, "dsrlb_vips", "VIPs lbd answers ARP for while active.", st->n_vips);
	metrics_gauge(m, "dsrlb_workers", "Forwarding threads.", st->workers);
	metrics_gauge(m, "dsrlb_flows", "Entries in the connection table.", st->flows);
	metrics_gauge(m, "dsrlb_flows_max", "Capacity of the connection table.", st->flow_max);
	metrics_gauge(m, "dsrlb_flow_entry_bytes", "Bytes one connection-table entry costs.", st->flow_bytes);
	metrics_counter(m, "dsrlb_config_reloads_total", "Config reloads lbd attempted.", st->reloads);
	metrics_gauge(m, "dsrlb_config_last_reload_failed", "1 when lbd refused the last config it was asked to load.",
		      st->last_reload_error[0] != '\0');
	if (st->counters)
		metrics_counters(m, st->counters);
	metrics_services(m, st);
	if (st->sync) {
		metrics_sync(m, st->sync);
		metrics_peers(m, st->sync);
	}
}

static void metrics_vrrpd(struct prom *m, const Dsrlb__VrrpStatus *vs)
{
	static const char *const states[] = { "INIT", "BACKUP", "MASTER", "FAULT", NULL };
	static const char *const peer_states[] = { "UNKNOWN", "SILENT", "INIT", "BACKUP", "MASTER", "FAULT", NULL };
	const Dsrlb__PeerStatus *p = vs->peer;

	prom_family(m, "dsrlb_vrrp_state", "gauge", "vrrpd's state (1 for the current one).");
	prom_stateset(m, NULL, "state", states, vs->state);
	metrics_gauge(m, "dsrlb_vrrp_master", "1 when vrrpd is MASTER: this node holds the VIPs.",
		      !strcmp(vs->state, "MASTER"));
	metrics_gauge(m, "dsrlb_vrrp_priority", "Configured priority.", vs->priority);
	metrics_gauge(m, "dsrlb_vrrp_effective_priority", "Advertised priority (0 while stopping or in FAULT).",
		      vs->effective_priority);
	metrics_seconds(m, "dsrlb_vrrp_advert_interval_seconds", "Advertisement interval in force.",
			vs->advert_interval_ms);
	metrics_seconds(m, "dsrlb_vrrp_master_down_seconds", "Master_Down_Interval in force.", vs->master_down_ms);
	metrics_gauge(m, "dsrlb_vrrp_preempt", "1 when preemption is on.", vs->preempt);
	metrics_gauge(m, "dsrlb_vrrp_lbd_healthy", "1 when this node's lbd answers vrrpd.", vs->lbd_healthy);
	metrics_gauge(m, "dsrlb_vrrp_link_up", "1 when the LAN interface has its link.", vs->link_up);
	metrics_gauge(m, "dsrlb_vrrp_stopping", "1 when vrrpd is stopping (handing the VIPs over).", vs->stopping);
	metrics_gauge(m, "dsrlb_vrrp_warnings", "Warnings vrrpd reports now (split brain, config mismatch, ...).",
		      vs->n_warnings);
	metrics_counter(m, "dsrlb_vrrp_transitions_total", "State changes of vrrpd.", vs->transitions);
	metrics_counter(m, "dsrlb_vrrp_adverts_sent_total", "Heartbeats sent.", vs->adverts_sent);
	metrics_counter(m, "dsrlb_vrrp_adverts_received_total", "Heartbeats accepted.", vs->adverts_received);
	if (vs->rejected) {
		/* Every field of RejectCounters is a reason, by its own name. */
		const ProtobufCMessageDescriptor *d = vs->rejected->base.descriptor;
		prom_family(m, "dsrlb_vrrp_heartbeats_rejected_total", "counter",
			    "Heartbeats refused, by reason (kernel_dropped: by the socket filter or a full buffer).");
		for (unsigned i = 0; i < d->n_fields; i++)
			prom_u64(m, PROM_L("reason", d->fields[i].name),
				 *(const uint64_t *)((const char *)vs->rejected + d->fields[i].offset));
	}
	if (p && p->name[0]) {
		const char *const *l = PROM_L("peer", p->name);
		prom_family(m, "dsrlb_vrrp_peer_state", "gauge",
			    "The peer's state as last heard (UNKNOWN: never heard, SILENT: not heard for 3 intervals).");
		prom_stateset(m, l, "state", peer_states, p->state);
		prom_family(m, "dsrlb_vrrp_peer_priority", "gauge", "The peer's advertised priority.");
		prom_u64(m, l, p->priority);
		if (p->last_heard_ms >= 0) {
			prom_family(m, "dsrlb_vrrp_peer_last_heard_seconds", "gauge", "Time since the peer's last heartbeat.");
			prom_ms(m, l, (uint64_t)p->last_heard_ms);
		}
		prom_family(m, "dsrlb_vrrp_peer_config_match", "gauge", "1 when the peer's config digest equals ours.");
		prom_u64(m, l, p->digest_match);
		prom_family(m, "dsrlb_vrrp_peer_lbd_healthy", "gauge", "1 when the peer reports its lbd healthy.");
		prom_u64(m, l, p->lbd_healthy);
		prom_family(m, "dsrlb_vrrp_peer_flows", "gauge", "Flows in the peer's connection table, from its heartbeat.");
		prom_u64(m, l, p->flows);
	}
}

/* Families both daemons feed, labelled by daemon. */
static void metrics_shared(struct prom *m, const Dsrlb__LbdStatus *st, const Dsrlb__VrrpStatus *vs)
{
	const Dsrlb__Counters *c = st ? st->counters : NULL;
	char hex[2 * 64 + 1];

	prom_family(m, "dsrlb_uptime_seconds", "gauge", "Time since the daemon started.");
	if (st)
		prom_ms(m, PROM_L("daemon", "lbd"), st->uptime_ms);
	if (vs)
		prom_ms(m, PROM_L("daemon", "vrrpd"), vs->uptime_ms);
	prom_family(m, "dsrlb_config_info", "gauge",
		    "The BLAKE2b digest of the config file a daemon runs with (always 1; differs between nodes: "
		    "the files differ).");
	for (int i = 0; i < 2; i++) {
		const ProtobufCBinaryData *d = i == 0 ? (st ? &st->config_digest : NULL) : (vs ? &vs->config_digest : NULL);
		size_t n = 0;
		if (!d)
			continue;
		for (size_t j = 0; j < d->len && j < 64; j++)
			n += (size_t)snprintf(hex + n, sizeof(hex) - n, "%02x", d->data[j]);
		hex[n] = '\0';
		prom_u64(m, PROM_L("daemon", i == 0 ? "lbd" : "vrrpd", "digest", hex), 1);
	}
	prom_family(m, "dsrlb_control_refused_total", "counter",
		    "Control-socket requests refused for want of rights (docs/security.md).");
	if (c)
		prom_u64(m, PROM_L("daemon", "lbd"), c->ctl_refused);
	if (vs)
		prom_u64(m, PROM_L("daemon", "vrrpd"), vs->ctl_refused);
	prom_family(m, "dsrlb_control_closed_total", "counter",
		    "Control-socket connections closed by the daemon, by reason (docs/security.md).");
	for (int i = 0; i < 2; i++) {
		const char *dn = i == 0 ? "lbd" : "vrrpd";
		uint64_t v[4];
		if (i == 0 && !c)
			continue;
		if (i == 1 && !vs)
			continue;
		v[0] = i == 0 ? c->ctl_idle_closed : vs->ctl_idle_closed;
		v[1] = i == 0 ? c->ctl_evicted : vs->ctl_evicted;
		v[2] = i == 0 ? c->ctl_oversized : vs->ctl_oversized;
		v[3] = i == 0 ? c->ctl_bad_requests : vs->ctl_bad_requests;
		prom_u64(m, PROM_L("daemon", dn, "reason", "idle"), v[0]);
		prom_u64(m, PROM_L("daemon", dn, "reason", "evicted"), v[1]);
		prom_u64(m, PROM_L("daemon", dn, "reason", "oversized"), v[2]);
		prom_u64(m, PROM_L("daemon", dn, "reason", "bad_request"), v[3]);
	}
}

void metrics_render(struct prom *m, const struct metrics_input *in)
{
	prom_family(m, "dsrlb_build_info", "gauge", "The exporter's version (always 1).");
	prom_u64(m, PROM_L("version", DSRLB_VERSION), 1);
	prom_family(m, "dsrlb_up", "gauge", "1 when the daemon answered the exporter's status request in time.");
	prom_u64(m, PROM_L("daemon", "lbd"), in->lbd != NULL);
	prom_u64(m, PROM_L("daemon", "vrrpd"), in->vrrpd != NULL);
	prom_family(m, "dsrlb_exporter_query_seconds", "gauge",
		    "How long the daemon took to answer this scrape's status request (or to fail).");
	prom_double(m, PROM_L("daemon", "lbd"), in->lbd_seconds);
	prom_double(m, PROM_L("daemon", "vrrpd"), in->vrrpd_seconds);
	if (in->lbd)
		metrics_lbd(m, in->lbd);
	if (in->vrrpd)
		metrics_vrrpd(m, in->vrrpd);
	metrics_shared(m, in->lbd, in->vrrpd);
}
