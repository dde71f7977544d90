/* Keeps the balancer's own IP stack away from VIP frames: an nftables netdev ingress rule drops them
 * after the packet socket has seen them, so the kernel neither routes them a second time nor spends a
 * route lookup on each (DESIGN.md trap 1; the VIP is not a kernel address either). In mode = ecmp it
 * also adds and deletes the VIP routes the routing daemon announces (lbd/announce.c). Both are changed
 * by a small helper process, the only part of lbd that keeps CAP_NET_ADMIN (kdrop.c). */
#ifndef DSR_KDROP_H
#define DSR_KDROP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "ipaddr.h"

/* The routing protocol number of the announced routes (`ip route ... proto 177`): unassigned in
 * Linux's rtnetlink.h and iproute2's rt_protos, so the routes are lbd's alone (docs/deploy-ecmp.md). */
#define KDROP_RTPROT 177

struct kdrop;

/* Forks the helper for the config's interface and, in mode = ecmp, its announce_table, announce_device
 * and VIPs (fixed for the helper's life); it becomes uid:gid with CAP_NET_ADMIN alone. Call while
 * root, before the packet sockets are opened and before any thread starts. NULL (logged) on failure. */
struct kdrop *kdrop_create(const struct cfg *cfg, uid_t uid, gid_t gid);
/* Installs or replaces the rule for these VIPs (either family); -1 (logged) if nftables is not usable. */
int kdrop_install(struct kdrop *k, const struct ipaddr *vips, size_t n);
void kdrop_remove(struct kdrop *k);
/* mode = ecmp: adds (announce) or deletes the route VIP/32 (IPv4) or VIP/128 (IPv6) dev announce_device
 * table announce_table proto KDROP_RTPROT; the helper announces only VIPs of the config file. 0, or -1
 * (logged). */
int kdrop_route(struct kdrop *k, const struct ipaddr *vip, int announce);
/* Ends the helper (the rule stays as it is); accepts NULL. */
void kdrop_destroy(struct kdrop *k);

#endif
