/* Keeps the balancer's own IP stack away from VIP frames: an nftables netdev ingress rule drops them
 * after the packet socket has seen them, so the kernel neither routes them a second time nor spends a
 * route lookup on each (DESIGN.md trap 1; the VIP is not a kernel address either). */
#ifndef DSR_KDROP_H
#define DSR_KDROP_H

#include <stddef.h>
#include <stdint.h>

/* Installs or replaces the rule for these VIPs; -1 (logged) if nftables is not usable. */
int kdrop_install(const char *ifname, const uint8_t mac[6], const uint32_t *vips, size_t n);
void kdrop_remove(void);

#endif
