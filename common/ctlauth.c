/* Control-socket authorisation: the rights a client's credentials (SO_PEERCRED, SO_PEERGROUPS, read by
 * common/ipc.c when it connects) give it under the config's operator_group and status_group, and the
 * refusal the client is told. */
#include <stdio.h>
#include <unistd.h>

#include "ctlauth.h"

static int ctlauth_member(const struct cfg_group *g, const struct ipc_cred *c)
{
	if (!g->set)
		return 0;
	if (c->gid == g->gid)
		return 1;
	for (size_t i = 0; i < c->n_groups; i++)
		if (c->groups[i] == g->gid)
			return 1;
	return 0;
}

enum ipc_access ctlauth_decide(const struct cfg_group *operator_group, const struct cfg_group *status_group,
			       uid_t daemon_uid, const struct ipc_cred *c)
{
	if (c->uid == 0 || c->uid == daemon_uid || ctlauth_member(operator_group, c))
		return IPC_ACCESS_CHANGE;
	if (ctlauth_member(status_group, c))
		return IPC_ACCESS_READ;
	return IPC_ACCESS_NONE;
}

enum ipc_access ctlauth_access(const struct cfg *cfg, const struct ipc_cred *c)
{
	return ctlauth_decide(&cfg->operator_group, &cfg->status_group, geteuid(), c);
}

int ctlauth_check(const struct cfg *cfg, const struct ipc_peer *peer, enum ipc_access need, const char *what,
		  char *err, size_t errlen)
{
	const struct cfg_group *op = &cfg->operator_group, *st = &cfg->status_group;
	const char *key = need == IPC_ACCESS_CHANGE ? "operator_group" : "status_group";
	char groups[2 * CFG_GROUP_NAME_MAX + 64];

	if (peer->access >= need)
		return 0;
	if (need == IPC_ACCESS_READ && st->set && op->set)
		snprintf(groups, sizeof(groups), "group %s (status_group) or group %s (operator_group)", st->name,
			 op->name);
	else if (need == IPC_ACCESS_READ && st->set)
		snprintf(groups, sizeof(groups), "group %s (status_group)", st->name);
	else if (op->set)
		snprintf(groups, sizeof(groups), "group %s (operator_group)", op->name);
	else
		groups[0] = 0;
	if (groups[0])
		snprintf(err, errlen, "permission denied: uid %u is not in %s, needed to %s (root and the daemons' "
			 "user, uid %u, may too)", (unsigned)peer->uid, groups, what, (unsigned)geteuid());
	else
		snprintf(err, errlen, "permission denied: uid %u may not %s: only root and the daemons' user (uid %u) "
			 "may, unless %s is set in [cluster]", (unsigned)peer->uid, what, (unsigned)geteuid(), key);
	return -1;
}
