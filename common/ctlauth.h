/* Who may do what over the control sockets (docs/security.md, "Control sockets"): root, the daemons'
 * own user and members of operator_group may change state; members of status_group may also read
 * status; anyone else may do nothing. The rule is one pure function, ctlauth_decide. */
#ifndef DSR_CTLAUTH_H
#define DSR_CTLAUTH_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "ipc.h"

/* The rights of a client with credentials c, for a daemon running as daemon_uid. */
enum ipc_access ctlauth_decide(const struct cfg_group *operator_group, const struct cfg_group *status_group,
			       uid_t daemon_uid, const struct ipc_cred *c);

/* ctlauth_decide under cfg for this process's effective uid: the ipc_access_fn of both daemons. */
enum ipc_access ctlauth_access(const struct cfg *cfg, const struct ipc_cred *c);

/* 0 if peer has the rights `need`; otherwise -1 with a one-line refusal in err naming the request
 * (`what`), the client's uid and the group it would need. */
int ctlauth_check(const struct cfg *cfg, const struct ipc_peer *peer, enum ipc_access need, const char *what,
		  char *err, size_t errlen);

#endif
