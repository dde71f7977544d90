/* The addresses in a Heartbeat, both ways (heartbeat.h). The rule, from proto/heartbeat.proto: IPv4 in
 * the fixed32 fields as before (an IPv4 pair's heartbeats are unchanged on the wire), IPv6 in 16-byte
 * fields; an IPv4 address never comes in its IPv4-mapped IPv6 form, so each address has one encoding. */
#include <string.h>

#include "heartbeat.h"

void heartbeat_put_addrs(Dsrlb__Heartbeat *hb, struct heartbeat_buf *buf, const struct ipaddr *self,
			 const struct ipaddr *vips, size_t n_vips)
{
	hb->address = 0;
	hb->address6.data = NULL;
	hb->address6.len = 0;
	if (ipaddr_is_v4(self)) {
		hb->address = ipaddr_v4(self);
	} else {
		memcpy(buf->address6, self->b, sizeof(buf->address6));
		hb->address6.data = buf->address6;
		hb->address6.len = sizeof(buf->address6);
	}
	hb->n_vips = 0;
	hb->n_vips6 = 0;
	if (n_vips > CFG_MAX_SERVICES)
		n_vips = CFG_MAX_SERVICES;
	for (size_t i = 0; i < n_vips; i++) {
		if (ipaddr_is_v4(&vips[i])) {
			buf->vips[hb->n_vips++] = ipaddr_v4(&vips[i]);
		} else {
			memcpy(buf->vip6_bytes[hb->n_vips6], vips[i].b, 16);
			buf->vips6[hb->n_vips6].data = buf->vip6_bytes[hb->n_vips6];
			buf->vips6[hb->n_vips6].len = 16;
			hb->n_vips6++;
		}
	}
	hb->vips = hb->n_vips ? buf->vips : NULL;
	hb->vips6 = hb->n_vips6 ? buf->vips6 : NULL;
}

/* A 16-byte address field: exactly 16 bytes, and not an IPv4 address in disguise. */
static int heartbeat_addr6(const ProtobufCBinaryData *d, struct ipaddr *out, const char **why)
{
	if (d->len != 16) {
		*why = "an IPv6 address field is not 16 bytes";
		return -1;
	}
	*out = ipaddr_from_v6(d->data);
	if (ipaddr_is_v4(out)) {
		*why = "an IPv6 address field holds an IPv4-mapped address";
		return -1;
	}
	return 0;
}

int heartbeat_get_addrs(const Dsrlb__Heartbeat *hb, struct ipaddr *sender, struct ipaddr *vips, size_t cap,
			size_t *n_vips, const char **why)
{
	size_t n = 0;

	*n_vips = 0;
	memset(sender, 0, sizeof(*sender));
	if (hb->address && hb->address6.len) {
		*why = "it carries both an IPv4 and an IPv6 sender address";
		return -1;
	}
	if (hb->address6.len) {
		if (heartbeat_addr6(&hb->address6, sender, why) < 0)
			return -1;
	} else if (hb->address) {
		*sender = ipaddr_from_v4(hb->address);
	}
	/* Every IPv6 VIP is checked, also those beyond cap: a heartbeat is taken whole or not at all. */
	for (size_t i = 0; i < hb->n_vips6; i++) {
		struct ipaddr a;
		if (heartbeat_addr6(&hb->vips6[i], &a, why) < 0)
			return -1;
	}
	for (size_t i = 0; i < hb->n_vips && n < cap; i++)
		vips[n++] = ipaddr_from_v4(hb->vips[i]);
	for (size_t i = 0; i < hb->n_vips6 && n < cap; i++)
		vips[n++] = ipaddr_from_v6(hb->vips6[i].data);
	*n_vips = n;
	return 0;
}
