/* Live reload (SIGHUP, `lbctl reload`): the new config and its key files are loaded and checked in full
 * before anything changes, so a broken file leaves the running config as it was; then the data plane,
 * the packet filter, the nftables rule, health checks and sync take it in. Every refusal and every
 * failure after the switch reaches `last_reload_error` (lbctl status) and the log. */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "kdrop.h"
#include "lbd.h"
#include "log.h"
#include "startup.h"

#define RELOAD_FILTER_MAX LBD_FILTER_MAX

/* mode, announce_table and announce_device shape what lbd set up at start (vrrpd or not, the device
 * and the helper's table): a change is refused with the file:line of the new value. */
static int reload_check_ecmp(const struct lbd *l, const struct cfg *cfg, char *err, size_t errlen)
{
	const char *key = NULL;
	int line = 0;

	if (cfg->mode != l->cfg->mode)
		key = "mode", line = cfg->mode_line;
	else if (cfg->mode == CFG_MODE_ECMP && cfg->announce_table != l->cfg->announce_table)
		key = "announce_table", line = cfg->announce_table_line;
	else if (cfg->mode == CFG_MODE_ECMP && strcmp(cfg->announce_device, l->cfg->announce_device) != 0)
		key = "announce_device", line = cfg->announce_device_line;
	if (!key)
		return 0;
	if (line)
		snprintf(err, errlen, "%s:%d: %s changes only on restart (lbd runs with the old value)", cfg->path,
			 line, key);
	else
		snprintf(err, errlen, "%s: %s (now its default) changes only on restart (lbd runs with the old value)",
			 cfg->path, key);
	return -1;
}

/* [cluster] settings lbd acts on at start only (rings, threads, privileges, sync's listener): the first
 * one that changed, or NULL. */
static const char *reload_restart_only(const struct cfg *old, const struct cfg *cfg)
{
	if (strcmp(cfg->interface, old->interface) != 0)
		return "interface";
	if (cfg->flow_max != old->flow_max)
		return "flow_max";
	if (cfg->workers != old->workers)
		return "workers";
	if (strcmp(cfg->user, old->user) != 0)
		return "user";
	if (cfg->rx_ring_version != old->rx_ring_version)
		return "rx_ring_version";
	if (cfg->realtime != old->realtime)
		return "realtime";
	if (cfg->sync != old->sync)
		return "sync";
	if (cfg->sync_port != old->sync_port)
		return "sync_port";
	return NULL;
}

/* The nodes are lbd's sync peers, connected at start: a node added, removed or moved is refused (a
 * priority may change; vrrpd reads it). */
static int reload_check_nodes(const struct cfg *old, const struct cfg *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const struct cfg_node *n = &cfg->nodes[i], *o = cfg_find_node(old, n->name, NULL, 0);
		if (!o || !ipaddr_eq(&o->addr, &n->addr)) {
			snprintf(err, errlen, "%s:%d: node %s is %s: the nodes and their addresses change only on "
				 "restart (lbd runs with the old ones)", cfg->path, n->line, n->name,
				 o ? "at a new address" : "new");
			return -1;
		}
	}
	for (size_t i = 0; i < old->n_nodes; i++)
		if (!cfg_find_node(cfg, old->nodes[i].name, NULL, 0)) {
			snprintf(err, errlen, "%s: node %s is gone: the nodes and their addresses change only on "
				 "restart (lbd runs with the old ones)", cfg->path, old->nodes[i].name);
			return -1;
		}
	return 0;
}

/* The new config's own checks: what changes only on restart, our node in it, a filter that fits. */
static int reload_check(struct lbd *l, const struct cfg *cfg, struct sock_filter *prog, size_t *prog_len,
			char *err, size_t errlen)
{
	struct ipaddr vips[LBD_MAX_VIPS];
	size_t n_vips = cfg_vips(cfg, vips, LBD_MAX_VIPS);
	const char *key = reload_restart_only(l->cfg, cfg);

	if (key) {
		snprintf(err, errlen, "%s: %s changes only on restart (lbd runs with the old value)", cfg->path, key);
		return -1;
	}
	if (reload_check_ecmp(l, cfg, err, errlen) < 0 || reload_check_nodes(l->cfg, cfg, err, errlen) < 0 ||
	    !cfg_find_node(cfg, l->node, err, errlen))
		return -1;
	/* The connection table's entries were sized at start: 32 bytes for IPv4 only, 56 for both families. */
	if (cfg_has_ipv6(cfg) && !flow_ipv6(l->workers[0].flows)) {
		for (size_t i = 0; i < cfg->n_services; i++)
			if (!ipaddr_is_v4(&cfg->services[i].vip)) {
				snprintf(err, errlen, "%s:%d: the first IPv6 service needs a restart of lbd (its connection "
					 "table was sized for IPv4 only at start)", cfg->path, cfg->services[i].line);
				break;
			}
		return -1;
	}
	*prog_len = filter_build(vips, n_vips, prog, RELOAD_FILTER_MAX);
	if (!*prog_len) {
		snprintf(err, errlen, "%s: too many VIPs for the packet filter", l->cfg_path);
		return -1;
	}
	return 0;
}

int lbd_reload(struct lbd *l, char *err, size_t errlen)
{
	struct sock_filter prog[RELOAD_FILTER_MAX];
	size_t prog_len = 0;
	struct auth_keyring *keys;
	struct cfg *cfg;

	err[0] = 0;
	cfg = cfg_load(l->cfg_path, err, errlen);
	if (!cfg)
		goto refused;
	/* The key files are part of the config: a missing or unsafe one refuses the whole reload. */
	keys = startup_keys(cfg, l->gid, err, errlen);
	if (!keys)
		goto free_cfg;
	err[0] = 0;
	if (reload_check(l, cfg, prog, &prog_len, err, errlen) < 0)
		goto free_keys;
	dp_write_lock(l);
	int applied = dp_apply_config(l, cfg);      /* takes cfg on success */
	dp_write_unlock(l);
	if (applied < 0) {
		snprintf(err, errlen, "cannot apply the new config (out of memory)");
		goto free_keys;
	}

	/* Switched: from here on a failure is reported, and the rest still applied. */
	for (unsigned i = 0; i < l->n_workers; i++)
		if (ring_set_filter(l->workers[i].ring, prog, prog_len) < 0 && !err[0])
			snprintf(err, errlen, "applied, but the packet filter of worker %u could not be replaced", i);
	if (l->cfg->kernel_drop) {
		if (kdrop_install(l->kdrop, l->vips, l->n_vips) < 0 && !err[0])
			snprintf(err, errlen, "applied, but the nftables rule for the VIPs could not be installed "
				 "(see the log); the local stack may see VIP frames");
	} else {
		kdrop_remove(l->kdrop);
	}
	health_reload(l->health);
	l->arp_fast_until_ms = clock_ms() + 2000;
	l->arp_timer.repeat = 0.001;
	ev_timer_again(l->loop, &l->arp_timer);
	if (l->sync)
		sync_reload(l->sync, keys);
	else
		auth_keyring_destroy(keys);
	l->reloads++;
	snprintf(l->last_reload_error, sizeof(l->last_reload_error), "%s", err);
	if (err[0]) {
		log_err("config reloaded from %s, %s", l->cfg_path, err);
		return -1;
	}
	log_info("config reloaded from %s", l->cfg_path);
	return 0;

free_keys:
	auth_keyring_destroy(keys);
free_cfg:
	cfg_free(cfg);
refused:
	snprintf(l->last_reload_error, sizeof(l->last_reload_error), "%s", err);
	log_err("reload refused, keeping the running config: %s", err);
	return -1;
}
