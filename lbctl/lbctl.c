/* lbctl: the operator's command. Talks to lbd and vrrpd over their control sockets in the run dir,
 * prints status for people or as JSON, drains backends, reloads, and generates cluster keys. Every
 * request has a timeout, and a missing or confused daemon gives a one-line error and a non-zero exit. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "checkbackend.h"
#include "control.pb-c.h"
#include "ipc.h"
#include "pbjson.h"

#define LBCTL_TIMEOUT_MS 3000      /* for the whole command, however many daemons it asks */
#define LBCTL_MIN_MS 300           /* what a later request gets at least */

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_DOWN = 3 };

struct lbctl {
	const char *run_dir;
	const char *cfg_path;
	int json;
	uint32_t limit;
	uint64_t deadline_ms;
	char lbd_sock[4200];
	char vrrpd_sock[4200];
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: lbctl [--run-dir DIR] [-c FILE] COMMAND [ARGS]\n"
		"       lbctl --version\n"
		"\n"
		"commands:\n"
		"  status [--json]             this node and its peer: roles, VIPs, services, backends, counters;\n"
		"                              STOPPING / RELEASING while a node hands its VIPs over; in mode = ecmp\n"
		"                              whether each VIP is announced, and why not\n"
		"  stats [--json]              packet and flow counters of the local lbd\n"
		"  backends [--json]           backends of every service: state, MAC, weight, flows\n"
		"  flows [--limit N] [--json]  entries of the connection table (default limit 100)\n"
		"  drain SERVICE BACKEND       no new flows to BACKEND (an IPv4 or IPv6 address); its established\n"
		"                              flows continue\n"
		"  undrain SERVICE BACKEND     give BACKEND new flows again\n"
		"  reload [lbd|vrrpd]          make lbd and vrrpd (or the one named) re-read the config; exit 1\n"
		"                              and the reason if a daemon refused it (it keeps its old config)\n"
		"  set-mode active|standby     operator override of lbd's mode (when no vrrpd runs; mode = pair)\n"
		"  drain-node                  mode = ecmp: withdraw every VIP route (the routers stop sending here);\n"
		"                              lbd keeps forwarding and stays up\n"
		"  undrain-node                mode = ecmp: announce the VIPs again\n"
		"  keygen FILE [GROUP]         write a new random cluster key (mode 0600; never overwrites); with\n"
		"                              GROUP (the daemons' group, docs/deploy.md): mode 0640, that group\n"
		"  check-backend ADDRESS [--vip VIP] [--port PORT] [--udp] [--interface IF]\n"
		"                              is backend ADDRESS ready for DSR? (ARP, VIP ARP, VIP traffic, own address;\n"
		"                              IPv4 or IPv6, for IPv6 NDP instead of ARP; services from -c; needs\n"
		"                              CAP_NET_RAW; exit 1 a check failed, 3 cannot run)\n"
		"\n"
		"options:\n"
		"  --run-dir DIR   where the daemons' control sockets are (default /run/dsrlb)\n"
		"  -c FILE         the cluster config (used by check-backend; default /etc/dsrlb/dsrlb.conf)\n"
		"  --json          machine-readable output (schema: proto/control.proto, docs/status.md)\n"
		"  --limit N       flows: at most N entries (lbd sends at most 100000)\n"
		"\n"
		"Who may do what: root, the daemons' user and operator_group may run every command; status_group\n"
		"may run status, stats, backends and flows (docs/security.md).\n"
		"\n"
		"exit status: 0 ok, 1 the daemon refused (also: permission denied) or failed, 2 usage,\n"
		"             3 a daemon is not reachable\n");
}

/* What is left of the command's time budget, so two unresponsive daemons cost one timeout, not two. */
static int lbctl_budget(const struct lbctl *c)
{
	uint64_t now = clock_ms();
	uint64_t left = c->deadline_ms > now ? c->deadline_ms - now : 0;

	return (int)(left < LBCTL_MIN_MS ? LBCTL_MIN_MS : left);
}

static Dsrlb__LbdResponse *lbctl_lbd(struct lbctl *c, const Dsrlb__LbdRequest *q, char *err, size_t errlen)
{
	size_t len = dsrlb__lbd_request__get_packed_size(q), rlen;
	uint8_t buf[1024], *resp;
	Dsrlb__LbdResponse *r;

	if (len > sizeof(buf)) {
		snprintf(err, errlen, "request too large");
		return NULL;
	}
	dsrlb__lbd_request__pack(q, buf);
	if (ipc_call(c->lbd_sock, buf, len, &resp, &rlen, lbctl_budget(c), err, errlen) < 0)
		return NULL;
	r = dsrlb__lbd_response__unpack(NULL, rlen, resp);
	free(resp);
	if (!r)
		snprintf(err, errlen, "%s: the daemon's answer does not parse", c->lbd_sock);
	return r;
}

static Dsrlb__VrrpResponse *lbctl_vrrpd(struct lbctl *c, Dsrlb__VrrpCmd cmd, char *err, size_t errlen)
{
	Dsrlb__VrrpRequest q = DSRLB__VRRP_REQUEST__INIT;
	uint8_t buf[64], *resp;
	size_t len, rlen;
	Dsrlb__VrrpResponse *r;

	q.cmd = cmd;
	len = dsrlb__vrrp_request__pack(&q, buf);
	if (ipc_call(c->vrrpd_sock, buf, len, &resp, &rlen, lbctl_budget(c), err, errlen) < 0)
		return NULL;
	r = dsrlb__vrrp_response__unpack(NULL, rlen, resp);
	free(resp);
	if (!r)
		snprintf(err, errlen, "%s: the daemon's answer does not parse", c->vrrpd_sock);
	return r;
}

/* A status answer that refuses (no rights) becomes an error like an unreachable daemon's, but marked
 * so the exit status says "refused" (1), not "down" (3). */
static void lbctl_refusal(const char *who, const char *error, char *err, size_t errlen, int *refused)
{
	snprintf(err, errlen, "%s: %s", who, error);
	*refused = 1;
}

static const char *lbctl_ago(int64_t ms, char *buf, size_t len)
{
	if (ms < 0)
		return "never";
	if (ms < 10000)
		snprintf(buf, len, "%" PRId64 " ms ago", ms);
	else
		snprintf(buf, len, "%" PRId64 " s ago", ms / 1000);
	return buf;
}

/* A column's width: at least w, and wide enough for s (an IPv6 address is up to 39 characters, and
 * "[address]:port" 47), so a long address widens its column instead of shifting the ones after it. */
static int lbctl_width(int w, const char *s)
{
	int n = (int)strlen(s);

	return n > w ? n : w;
}

static void lbctl_print_backends(const Dsrlb__LbdStatus *st)
{
	for (size_t i = 0; i < st->n_services; i++) {
		const Dsrlb__Service *s = st->services[i];
		int aw = 16;

		for (size_t j = 0; j < s->n_backends; j++)
			aw = lbctl_width(aw, s->backends[j]->address);
		printf("service %s  %s%s%s:%u/%s  forwarded %" PRIu64, s->name, strchr(s->vip, ':') ? "[" : "", s->vip,
		       strchr(s->vip, ':') ? "]" : "", s->port, s->protocol, s->forwarded);
		if (s->all_down && s->sorry_backend)
			printf("  ** NO USABLE BACKEND: new flows go to the sorry backend %s **", s->sorry_backend->address);
		else if (s->all_down)
			printf("  ** NO USABLE BACKEND: traffic is dropped **");
		putchar('\n');
		printf("  %-*s %-9s %-18s %7s %10s %12s  %s\n", aw, "backend", "state", "mac", "weight", "flows",
		       "forwarded", "last check");
		for (size_t j = 0; j < s->n_backends; j++) {
			const Dsrlb__Backend *b = s->backends[j];
			printf("  %-*s %-9s %-18s %7u %10" PRIu64 " %12" PRIu64 "  %s%s\n", aw, b->address, b->state,
			       b->mac[0] ? b->mac : "-", b->weight, b->flows, b->forwarded,
			       b->check_result[0] ? b->check_result : "-",
			       b->answers_vip_arp ? "  ! answers ARP/NDP for the VIP (not set up for DSR)" : "");
		}
		if (s->sorry_backend)
			printf("  sorry backend %s  %s  mac %s  flows %" PRIu64 "  forwarded %" PRIu64 "\n",
			       s->sorry_backend->address, s->sorry_backend->state,
			       s->sorry_backend->mac[0] ? s->sorry_backend->mac : "-", s->sorry_backend->flows,
			       s->sorry_backend->forwarded);
	}
}

static void lbctl_print_counters(const Dsrlb__Counters *c)
{
	const ProtobufCMessageDescriptor *d = c->base.descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		uint64_t v = *(const uint64_t *)((const char *)c + d->fields[i].offset);
		printf("  %-24s %" PRIu64 "\n", d->fields[i].name, v);
	}
}

/* A daemon's control-socket counters, printed when any is non-zero (docs/security.md). */
static void lbctl_print_ctl(const char *who, uint64_t refused, uint64_t idle, uint64_t evicted, uint64_t oversized,
			    uint64_t bad)
{
	printf("  control %-6s refused %" PRIu64 "  idle-closed %" PRIu64 "  evicted %" PRIu64 "  oversized %" PRIu64
	       "  bad %" PRIu64 "\n", who, refused, idle, evicted, oversized, bad);
}

/* One line per other node: our sync with it, and what it last said about itself (NODE_STATE). */
static void lbctl_print_peers(const Dsrlb__SyncStatus *y)
{
	int aw = 15;

	if (!y->n_peers)
		return;
	for (size_t i = 0; i < y->n_peers; i++)
		aw = lbctl_width(aw, y->peers[i]->address);
	printf("  %-12s %-*s %-11s %-9s %-7s %6s %5s %9s %7s %8s  %-4s %-9s %8s %-8s %s\n", "node", aw, "address",
	       "sync", "bulk-in", "bulk-out", "lag", "p99", "queued", "dropped", "rejected", "fwd", "announced",
	       "flows", "config", "age");
	for (size_t i = 0; i < y->n_peers; i++) {
		const Dsrlb__SyncPeerStatus *p = y->peers[i];
		char age[32];

		if (p->state_age_ms < 0)
			snprintf(age, sizeof(age), "never");
		else
			snprintf(age, sizeof(age), "%" PRId64 ".%01" PRId64 " s", p->state_age_ms / 1000,
				 p->state_age_ms % 1000 / 100);
		printf("  %-12s %-*s %-11s %-9s %-7s %6u %5u %9" PRIu64 " %7" PRIu64 " %8" PRIu64 "  %-4s %-9s %8" PRIu64
		       " %-8s %s", p->name, aw, p->address, p->state, p->bulk_state, p->bulk_tx_state, p->last_lag_ms,
		       p->lag_p99_ms, p->out_bytes, p->dropped, p->rejected + p->unauthenticated + p->refused,
		       p->state_age_ms < 0 ? "?" : p->forwarding ? "yes" : "no",
		       p->state_age_ms < 0 ? "?" : p->announced ? "yes" : "no", p->flows,
		       p->state_age_ms < 0 ? "?" : p->config_digest_match ? "same" : "DIFFERS", age);
		printf("%s%s\n", p->announce_why[0] ? "  " : "", p->announce_why);
	}
}

static void lbctl_print_status(const Dsrlb__LbdStatus *st, const Dsrlb__VrrpStatus *vs, const char *vrrp_err)
{
	char ago[32];

	printf("node %s  (%s %s)\n", st ? st->node : vs->node, st ? st->interface : "", st ? st->mac : "");
	if (vs) {
		printf("  vrrpd   %-7s priority %u (advertising %u)  advert %u ms  master-down %u ms%s%s%s\n",
		       vs->state, vs->priority, vs->effective_priority, vs->advert_interval_ms, vs->master_down_ms,
		       vs->stopping ? "  STOPPING: handing over, then leaving" : "",
		       vs->fault_reason[0] ? "  fault: " : "", vs->fault_reason);
		if (vs->peer && vs->peer->name[0]) {
			const Dsrlb__PeerStatus *p = vs->peer;
			printf("  peer    %s %s  %-7s priority %u  heard %s  config %s  lbd %s  flows %" PRIu64 "%s\n",
			       p->name, p->address, p->state, p->priority,
			       lbctl_ago(p->last_heard_ms, ago, sizeof(ago)), p->digest_match ? "same" : "DIFFERS",
			       p->lbd_healthy ? "ok" : "DOWN", p->flows, p->stopping ? "  STOPPING" : "");
		}
		if (vs->master[0])
			printf("  master  %s\n", vs->master);
		if (vs->rejected) {
			const Dsrlb__RejectCounters *r = vs->rejected;
			printf("  heartbeats sent %" PRIu64 " received %" PRIu64 " rejected: malformed %" PRIu64
			       " bad-mac %" PRIu64 " replay %" PRIu64 " unknown-node %" PRIu64 " unknown-key %" PRIu64
			       " stale-epoch %" PRIu64 "\n",
			       vs->adverts_sent, vs->adverts_received, r->malformed, r->bad_mac, r->replay,
			       r->unknown_node, r->unknown_key, r->stale_epoch);
		}
		if (vs->ctl_refused || vs->ctl_idle_closed || vs->ctl_evicted || vs->ctl_oversized || vs->ctl_bad_requests)
			lbctl_print_ctl("vrrpd", vs->ctl_refused, vs->ctl_idle_closed, vs->ctl_evicted, vs->ctl_oversized,
					vs->ctl_bad_requests);
		for (size_t i = 0; i < vs->n_warnings; i++)
			printf("  WARNING %s\n", vs->warnings[i]);
	} else if (vrrp_err) {
		printf("  vrrpd   not reachable (%s)\n", vrrp_err);
	}
	if (!st)
		return;
	printf("  lbd     %s%s (%s)  flows %" PRIu64 "/%" PRIu64 " (%" PRIu64 " bytes each)  up %" PRIu64 " s",
	       st->release_remaining_ms ? "RELEASING" : st->active ? "ACTIVE" : "standby",
	       !strcmp(st->cluster_mode, "ecmp") ? " mode ecmp" : "", st->mode_reason, st->flows,
	       st->flow_max, st->flow_bytes, st->uptime_ms / 1000);
	if (st->release_remaining_ms)
		printf("  forwarding %u ms more, no ARP answers", st->release_remaining_ms);
	if (!strcmp(st->cluster_mode, "ecmp")) {
		printf("%s\n", st->stopping ? "  STOPPING: routes withdrawn, forwarding until the routers stop sending"
		       : "");
		printf("  announce %s%s%s\n", st->announced ? "yes" : "NO", st->announced ? "" : ": ",
		       st->announced ? "" : st->announce_why);
		int vw = 16;

		for (size_t i = 0; i < st->n_announcements; i++)
			vw = lbctl_width(vw, st->announcements[i]->vip);
		for (size_t i = 0; i < st->n_announcements; i++)
			printf("  vip     %-*s %s\n", vw, st->announcements[i]->vip, st->announcements[i]->why);
		if (st->draining)
			printf("  DRAINING (lbctl drain-node): withdrawn, still forwarding; lbctl undrain-node announces "
			       "again\n");
	} else {
		printf("%s\n", st->stopping ? "  STOPPING: leaving once the peer has the VIPs" : "");
		printf("  vips   ");
		for (size_t i = 0; i < st->n_vips; i++)
			printf(" %s", st->vips[i]);
		printf("%s\n", st->active ? "  (owned by this node)" : "");
	}
	if (st->counters) {
		const Dsrlb__Counters *c = st->counters;
		printf("  frames  rx %" PRIu64 "  forwarded %" PRIu64 "  ring drops %" PRIu64 "  malformed %" PRIu64
		       "  standby drops %" PRIu64 "  no-service %" PRIu64 "  no-backend %" PRIu64 "\n",
		       c->rx_frames, c->forwarded, c->ring_drops, c->drop_malformed, c->drop_standby,
		       c->drop_no_service, c->drop_no_backend);
		if (c->ring_drops)
			printf("  WARNING the RX ring dropped %" PRIu64 " frames\n", c->ring_drops);
		if (c->ctl_refused || c->ctl_idle_closed || c->ctl_evicted || c->ctl_oversized || c->ctl_bad_requests)
			lbctl_print_ctl("lbd", c->ctl_refused, c->ctl_idle_closed, c->ctl_evicted, c->ctl_oversized,
					c->ctl_bad_requests);
	}
	if (st->sync) {
		const Dsrlb__SyncStatus *y = st->sync;
		printf("  sync    %s%s%s  lag %u ms (p99 %u)  bulk %s %" PRIu64 "/%" PRIu64 "  sent %" PRIu64
		       " received %" PRIu64 " rejected %" PRIu64 " dropped %" PRIu64 "\n",
		       y->state, y->peer[0] ? " with " : "", y->peer, y->last_lag_ms, y->lag_p99_ms, y->bulk_state,
		       y->bulk_received, y->bulk_total, y->sent_flows, y->received_flows, y->rejected, y->dropped);
		lbctl_print_peers(y);
	}
	if (st->last_reload_error[0])
		printf("  WARNING last reload failed: %s\n", st->last_reload_error);
	lbctl_print_backends(st);
}

static int lbctl_status(struct lbctl *c, int what)
{
	Dsrlb__LbdRequest q = DSRLB__LBD_REQUEST__INIT;
	char err[512], verr[512];
	Dsrlb__LbdResponse *r;
	Dsrlb__VrrpResponse *v = NULL;
	int rc = EXIT_OK, refused = 0;

	q.cmd = DSRLB__LBD_CMD__LBD_CMD_STATUS;
	r = lbctl_lbd(c, &q, err, sizeof(err));
	if (r && !r->ok) {
		lbctl_refusal("lbd", r->error, err, sizeof(err), &refused);
		dsrlb__lbd_response__free_unpacked(r, NULL);
		r = NULL;
	}
	/* In mode = ecmp no vrrpd runs: not asking it spares an error that means nothing. */
	if (r && r->status && !strcmp(r->status->cluster_mode, "ecmp"))
		what = what == 's' ? 'e' : what;
	if (what == 's')
		v = lbctl_vrrpd(c, DSRLB__VRRP_CMD__VRRP_CMD_STATUS, verr, sizeof(verr));
	if (v && !v->ok) {
		lbctl_refusal("vrrpd", v->error, verr, sizeof(verr), &refused);
		dsrlb__vrrp_response__free_unpacked(v, NULL);
		v = NULL;
	}
	if (!r && !v) {
		fprintf(stderr, "lbctl: %s\n", err);
		return refused ? EXIT_FAIL : EXIT_DOWN;
	}
	if (c->json) {
		printf("{\n  \"lbd\": ");
		if (r && r->status)
			pbjson_write(stdout, &r->status->base, 1);
		else
			printf("null");
		if (what == 's' || what == 'e') {
			printf(",\n  \"vrrpd\": ");
			if (v && v->status)
				pbjson_write(stdout, &v->status->base, 1);
			else
				printf("null");
		}
		printf(",\n  \"errors\": [");
		int first = 1;
		if (!r) {
			printf("\"lbd: %s\"", err);
			first = 0;
		}
		if (what == 's' && !v)
			printf("%s\"vrrpd: %s\"", first ? "" : ", ", verr);
		printf("]\n}\n");
	} else if (what == 's' || what == 'e') {
		lbctl_print_status(r ? r->status : NULL, v ? v->status : NULL, v || what == 'e' ? NULL : verr);
		if (!r)
			printf("  lbd     not reachable (%s)\n", err);
	} else if (r && what == 'b') {
		lbctl_print_backends(r->status);
	} else if (r && what == 'c') {
		lbctl_print_counters(r->status->counters);
	}
	if (!r)
		rc = refused ? EXIT_FAIL : EXIT_DOWN;
	if (r)
		dsrlb__lbd_response__free_unpacked(r, NULL);
	if (v)
		dsrlb__vrrp_response__free_unpacked(v, NULL);
	return rc;
}

static int lbctl_simple(struct lbctl *c, Dsrlb__LbdRequest *q)
{
	char err[512];
	Dsrlb__LbdResponse *r = lbctl_lbd(c, q, err, sizeof(err));
	int rc;

	if (!r) {
		fprintf(stderr, "lbctl: %s\n", err);
		return EXIT_DOWN;
	}
	rc = r->ok ? EXIT_OK : EXIT_FAIL;
	if (!r->ok)
		fprintf(stderr, "lbctl: %s\n", r->error);
	else if (q->cmd == DSRLB__LBD_CMD__LBD_CMD_FLOWS) {
		if (c->json) {
			pbjson_write(stdout, &r->base, 0);
			putchar('\n');
		} else {
			int cw = 22, vw = 22, bw = 16;

			for (size_t i = 0; i < r->n_flows; i++) {
				cw = lbctl_width(cw, r->flows[i]->client);
				vw = lbctl_width(vw, r->flows[i]->vip);
				bw = lbctl_width(bw, r->flows[i]->backend);
			}
			printf("%-*s %-*s %-5s %-*s %-12s %8s  %s\n", cw, "client", vw, "vip", "proto", bw, "backend",
			       "state", "idle_ms", "service");
			for (size_t i = 0; i < r->n_flows; i++) {
				const Dsrlb__Flow *f = r->flows[i];
				printf("%-*s %-*s %-5s %-*s %-12s %8u  %s\n", cw, f->client, vw, f->vip, f->protocol, bw,
				       f->backend, f->state, f->idle_ms, f->service);
			}
			printf("(%zu of %" PRIu64 " flows)\n", r->n_flows, r->flows_total);
		}
	} else {
		printf("ok\n");
	}
	dsrlb__lbd_response__free_unpacked(r, NULL);
	return rc;
}

/* Both daemons, or the one named (a unit's synchronous ExecReload= names its own daemon). */
static int lbctl_reload(struct lbctl *c, const char *which)
{
	Dsrlb__LbdRequest q = DSRLB__LBD_REQUEST__INIT;
	char err[512];
	Dsrlb__VrrpResponse *v;
	int rc = EXIT_OK;

	q.cmd = DSRLB__LBD_CMD__LBD_CMD_RELOAD;
	if (!which || !strcmp(which, "lbd"))
		rc = lbctl_simple(c, &q);
	if (which && strcmp(which, "vrrpd") != 0)
		return rc;
	v = lbctl_vrrpd(c, DSRLB__VRRP_CMD__VRRP_CMD_RELOAD, err, sizeof(err));
	if (!v && which) {
		fprintf(stderr, "lbctl: %s\n", err);
		return EXIT_DOWN;
	}
	if (v) {
		if (!v->ok) {
			fprintf(stderr, "lbctl: vrrpd: %s\n", v->error);
			rc = EXIT_FAIL;
		}
		dsrlb__vrrp_response__free_unpacked(v, NULL);
	}
	return rc;
}

/* The daemons re-read the key at reload as their unprivileged user: GROUP (theirs) may read it. */
static int lbctl_keygen(const char *path, const char *group)
{
	char err[512], *end;
	struct group *g = NULL;
	gid_t gid = 0;

	if (group) {
		unsigned long n = strtoul(group, &end, 10);
		if (group[0] >= '0' && group[0] <= '9' && !*end && n < UINT32_MAX)
			gid = (gid_t)n;
		else if ((g = getgrnam(group)))
			gid = g->gr_gid;
		else {
			fprintf(stderr, "lbctl: no such group '%s'\n", group);
			return EXIT_USAGE;
		}
	}
	if (auth_keygen(path, err, sizeof(err)) < 0) {
		fprintf(stderr, "lbctl: %s\n", err);
		return EXIT_FAIL;
	}
	if (group && (chown(path, (uid_t)-1, gid) < 0 || chmod(path, 0640) < 0)) {
		fprintf(stderr, "lbctl: %s: giving it to group %s: %s (the key is written, mode 0600)\n", path, group,
			strerror(errno));
		return EXIT_FAIL;
	}
	printf("wrote a new cluster key to %s (mode %s; copy it to the other node with the same owner, group "
	       "and mode)\n", path, group ? "0640" : "0600");
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "run-dir", required_argument, NULL, 'R' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "limit", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct lbctl c = { .run_dir = "/run/dsrlb", .limit = 100 };
	Dsrlb__LbdRequest q = DSRLB__LBD_REQUEST__INIT;
	const char *cmd;
	int o;

	while ((o = getopt_long(argc, argv, "+c:hjl:", opts, NULL)) != -1) {
		switch (o) {
		case 'R': c.run_dir = optarg; break;
		case 'c': c.cfg_path = optarg; break;
		case 'j': c.json = 1; break;
		case 'l': c.limit = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf("lbctl (dsrlb) %s\n", DSRLB_VERSION); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	/* check-backend parses its own options (--vip, --port, ...). */
	if (!strcmp(cmd, "check-backend"))
		return checkbackend_main(argc - optind + 1, argv + optind - 1, c.cfg_path);
	/* Options may also follow the command: lbctl status --json. */
	while ((o = getopt_long(argc, argv, "c:hjl:", opts, NULL)) != -1) {
		switch (o) {
		case 'R': c.run_dir = optarg; break;
		case 'c': c.cfg_path = optarg; break;
		case 'j': c.json = 1; break;
		case 'l': c.limit = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf("lbctl (dsrlb) %s\n", DSRLB_VERSION); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	int nargs = argc - optind;
	char **args = argv + optind;
	c.deadline_ms = clock_ms() + LBCTL_TIMEOUT_MS;
	snprintf(c.lbd_sock, sizeof(c.lbd_sock), "%s/lbd.sock", c.run_dir);
	snprintf(c.vrrpd_sock, sizeof(c.vrrpd_sock), "%s/vrrpd.sock", c.run_dir);

	if (!strcmp(cmd, "status") && nargs == 0)
		return lbctl_status(&c, 's');
	if (!strcmp(cmd, "stats") && nargs == 0)
		return lbctl_status(&c, 'c');
	if (!strcmp(cmd, "backends") && nargs == 0)
		return lbctl_status(&c, 'b');
	if (!strcmp(cmd, "flows") && nargs == 0) {
		q.cmd = DSRLB__LBD_CMD__LBD_CMD_FLOWS;
		q.limit = c.limit;
		return lbctl_simple(&c, &q);
	}
	if ((!strcmp(cmd, "drain") || !strcmp(cmd, "undrain")) && nargs == 2) {
		q.cmd = cmd[0] == 'd' ? DSRLB__LBD_CMD__LBD_CMD_DRAIN : DSRLB__LBD_CMD__LBD_CMD_UNDRAIN;
		q.service = args[0];
		q.backend = args[1];
		return lbctl_simple(&c, &q);
	}
	if (!strcmp(cmd, "reload") && nargs == 0)
		return lbctl_reload(&c, NULL);
	if (!strcmp(cmd, "reload") && nargs == 1 && (!strcmp(args[0], "lbd") || !strcmp(args[0], "vrrpd")))
		return lbctl_reload(&c, args[0]);
	if (!strcmp(cmd, "set-mode") && nargs == 1 &&
	    (!strcmp(args[0], "active") || !strcmp(args[0], "standby"))) {
		q.cmd = DSRLB__LBD_CMD__LBD_CMD_SET_MODE;
		q.active = !strcmp(args[0], "active");
		return lbctl_simple(&c, &q);
	}
	if ((!strcmp(cmd, "drain-node") || !strcmp(cmd, "undrain-node")) && nargs == 0) {
		q.cmd = cmd[0] == 'd' ? DSRLB__LBD_CMD__LBD_CMD_DRAIN_NODE : DSRLB__LBD_CMD__LBD_CMD_UNDRAIN_NODE;
		return lbctl_simple(&c, &q);
	}
	if (!strcmp(cmd, "keygen") && (nargs == 1 || nargs == 2))
		return lbctl_keygen(args[0], nargs == 2 ? args[1] : NULL);
	fprintf(stderr, "lbctl: unknown command or wrong arguments: %s (see lbctl --help)\n", cmd);
	return EXIT_USAGE;
}
