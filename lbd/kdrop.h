/* Keeps the balancer's own IP stack away from VIP frames: an nftables netdev ingress rule drops them
 * after the packet socket has seen them, so the kernel neither routes them a second time nor spends a
 * route lookup on each (DESIGN.md trap 1; the VIP is not a kernel address either). The rule is
 * changed by a small helper process, the only part of lbd that keeps CAP_NET_ADMIN (kdrop.c). */
#ifndef DSR_KDROP_H
#define DSR_KDROP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kdrop;

/* Forks the helper for interface ifname; it becomes uid:gid with CAP_NET_ADMIN alone. Call while
 * root, before the packet sockets are opened and before any thread starts. NULL (logged) on failure. */
struct kdrop *kdrop_create(const char *ifname, uid_t uid, gid_t gid);
/* Installs or replaces the rule for these VIPs (network order); -1 (logged) if nftables is not usable. */
int kdrop_install(struct kdrop *k, const uint32_t *vips, size_t n);
void kdrop_remove(struct kdrop *k);
/* Ends the helper (the rule stays as it is); accepts NULL. */
void kdrop_destroy(struct kdrop *k);

#endif
