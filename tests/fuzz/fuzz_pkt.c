/* Fuzz target: the frame classifier (lbd/pkt.c), which sees every frame of the LAN segment before
 * anything else does: ARP, IPv4, IPv6 with its extension headers, ICMP, ICMPv6 and neighbour discovery.
 * The input is one frame, Ethernet header first. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lbd/pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pkt p;
	/* A copy of exactly size bytes, so a read past the frame is caught even when the caller's
	 * buffer is larger. */
	uint8_t *frame = malloc(size ? size : 1);
	enum pkt_err e;

	if (!frame)
		return 0;
	memcpy(frame, data, size);
	e = pkt_parse(frame, (uint32_t)size, &p);
	(void)pkt_err_str(e);
	if (e == PKT_OK && (p.kind == PKT_IPV4 || p.kind == PKT_IPV6)) {
		/* The fields the forwarding path trusts must be consistent with the frame. */
		if (p.ihl < (p.kind == PKT_IPV4 ? 20 : 40) || p.ip_len < p.ihl || 14u + p.ip_len > size)
			abort();
		if (p.have_ports && p.ip_len < p.ihl + 8u)
			abort();
		(void)pkt_csum(frame + 14, p.ihl);
		(void)pkt_csum(frame + 14 + p.ihl, p.ip_len - p.ihl);
		if (p.kind == PKT_IPV6)
			(void)pkt_csum6(&p.src, &p.dst, p.proto, frame + 14 + p.ihl, p.ip_len - p.ihl);
	}
	if (p.nd_lladdr && (!p.nd_valid || p.nd_lladdr < frame + 14 || p.nd_lladdr + 6 > frame + size))
		abort();
	if (e == PKT_OK && p.kind == PKT_ARP && (p.arp_sha < frame || p.arp_sha + 6 > frame + size))
		abort();
	free(frame);
	return 0;
}
