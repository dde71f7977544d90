/* The addresses a Heartbeat (proto/heartbeat.proto) carries, put in and taken out: the sender's own, of
 * either family, and the VIPs of both families. Pure: no I/O, no allocation; the checks a decoded
 * heartbeat must pass before its addresses are believed live here, so unit tests reach every one. */
#ifndef DSR_VRRPD_HEARTBEAT_H
#define DSR_VRRPD_HEARTBEAT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "heartbeat.pb-c.h"
#include "ipaddr.h"

/* What a packed-to-be Heartbeat points into: keep it alive until the message is packed. */
struct heartbeat_buf {
	uint32_t vips[CFG_MAX_SERVICES];
	ProtobufCBinaryData vips6[CFG_MAX_SERVICES];
	uint8_t vip6_bytes[CFG_MAX_SERVICES][16];
	uint8_t address6[16];
};

/* Sets hb's sender address (address for an IPv4 node, address6 for an IPv6 one) and its VIPs (IPv4 in
 * vips, IPv6 in vips6, each in the order given); at most CFG_MAX_SERVICES VIPs are taken. */
void heartbeat_put_addrs(Dsrlb__Heartbeat *hb, struct heartbeat_buf *buf, const struct ipaddr *self,
			 const struct ipaddr *vips, size_t n_vips);

/* The sender's address (none if it sent neither field) and up to cap VIPs, IPv4 ones first, from an
 * unpacked heartbeat. -1 with *why set to a static phrase if it breaks the rules of heartbeat.proto: both
 * addresses set, a 16-byte field of another length, an IPv4-mapped address in one. */
int heartbeat_get_addrs(const Dsrlb__Heartbeat *hb, struct ipaddr *sender, struct ipaddr *vips, size_t cap,
			size_t *n_vips, const char **why);

#endif
