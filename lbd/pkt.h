/* Frame parser of the forwarding path: validates Ethernet, ARP, IPv4, IPv6 with its extension headers,
 * TCP/UDP, ICMP and ICMPv6 (errors, echo, neighbour discovery) headers of a received frame without trusting
 * any length field, and says what the frame is; and the frames lbd writes from scratch: ARP, Neighbour
 * Solicitation and Advertisement. Pure and allocation-free, so hostile frames are unit-tested directly. */
#ifndef DSR_PKT_H
#define DSR_PKT_H

#include <stdint.h>

#include "ipaddr.h"

enum pkt_kind {
	PKT_ARP,
	PKT_IPV4,
	PKT_IPV6,
	PKT_VLAN,        /* an 802.1Q/802.1ad tag still in the frame */
	PKT_OTHER,       /* another ethertype */
};

enum pkt_err {
	PKT_OK,
	PKT_TRUNCATED,   /* shorter than its headers */
	PKT_BAD_VERSION,
	PKT_BAD_IHL,
	PKT_BAD_LEN,     /* IP total/payload length inconsistent with the frame */
	PKT_BAD_ARP,
	PKT_BAD_EXT,     /* IPv6: malformed, misplaced, deprecated or too many extension headers */
};

/* Fields not applicable to the frame are zero. Addresses of both families are struct ipaddr (IPv4 mapped). */
struct pkt {
	enum pkt_kind kind;
	uint16_t ethertype;
	/* ARP (Ethernet/IPv4 only) */
	uint16_t arp_op;
	const uint8_t *arp_sha;
	uint32_t arp_spa, arp_tpa;      /* network order */
	/* IPv4 or IPv6 */
	struct ipaddr src, dst;
	uint8_t proto;                  /* IPv6: the upper-layer protocol after the extension headers */
	uint8_t hop_limit;              /* IPv4 TTL, IPv6 hop limit */
	uint16_t ihl;                   /* bytes from the IP header to the L4 header (IPv6: 40 + extensions) */
	uint16_t ip_len;                /* IPv4 total length; IPv6 40 + payload length */
	uint32_t frag_id;               /* IPv4 identification (16 bits) or IPv6 fragment id, network order */
	uint8_t frag;                   /* part of a fragmented datagram (not an IPv6 atomic fragment) */
	uint8_t frag_proto;             /* what every piece of the datagram names: IPv4's protocol, IPv6's
					 * fragment header's next header (an extension header's, or the upper
					 * layer's); proto is the upper layer's in a first fragment only */
	uint8_t later_frag;             /* non-first fragment: no L4 header */
	uint8_t have_ports;
	uint16_t sport, dport;          /* network order */
	uint8_t tcp_flags;
	/* ICMP or ICMPv6 */
	uint8_t icmp_type, icmp_code;
	uint8_t have_inner;             /* error message quoting a TCP/UDP header of the same IP family */
	struct ipaddr in_src, in_dst;
	uint8_t in_proto;
	uint16_t in_sport, in_dport;
	/* ICMPv6 Neighbour Solicitation (135) or Advertisement (136) that passed RFC 4861 7.1 validation */
	uint8_t nd_valid;
	uint8_t nd_flags;               /* NA: 0x80 router, 0x40 solicited, 0x20 override */
	struct ipaddr nd_target;
	const uint8_t *nd_lladdr;       /* NS: source, NA: target link-layer address option, or NULL */
};

/* Parses len bytes of frame. Fields not applicable to the frame are zero. */
enum pkt_err pkt_parse(const uint8_t *frame, uint32_t len, struct pkt *p);
const char *pkt_err_str(enum pkt_err e);
/* RFC 1071 checksum helpers. */
uint16_t pkt_csum(const void *data, uint32_t len);

/* Writes a PKT_ARP_LEN-byte Ethernet/ARP frame (addresses in network order): op 1 request, 2 reply. */
#define PKT_ARP_LEN 60
void pkt_arp_build(uint8_t *d, const uint8_t *src_mac, const uint8_t *eth_dst, uint16_t op, uint32_t spa,
		   const uint8_t *tha, uint32_t tpa);

/* ICMPv6 checksum (RFC 8200 8.1 pseudo-header) of len bytes of upper-layer data, network order; the data's
 * checksum field must be zero when computing, or the result is 0 when verifying a correct message. */
uint16_t pkt_csum6(const struct ipaddr *src, const struct ipaddr *dst, uint8_t next_header, const void *data,
		   uint32_t len);

/* Neighbour Advertisement (RFC 4861 4.4) from src_mac/src for target, with the target link-layer address
 * option (src_mac), flags as nd_flags, hop limit 255, checksum set: PKT_NA_LEN bytes. Unsolicited: dst
 * ff02::1 and eth_dst 33:33:00:00:00:01. */
#define PKT_NA_LEN 86
void pkt_na_build(uint8_t *d, const uint8_t *src_mac, const uint8_t *eth_dst, const struct ipaddr *src,
		  const struct ipaddr *dst, const struct ipaddr *target, uint8_t flags);
/* Unsolicited NA (RFC 4861 7.2.6) for target, from target, to all nodes (ff02::1, 33:33:00:00:00:01),
 * override set so neighbours replace their entry: PKT_NA_LEN bytes. */
void pkt_una_build(uint8_t *d, const uint8_t *src_mac, const struct ipaddr *target);
/* Neighbour Solicitation for target from src_mac/src, with the source link-layer address option, to the
 * target's solicited-node multicast address (ff02::1:ffXX:XXXX, 33:33:ff:XX:XX:XX): PKT_NS_LEN bytes. */
#define PKT_NS_LEN 86
void pkt_ns_build(uint8_t *d, const uint8_t *src_mac, const struct ipaddr *src, const struct ipaddr *target);

#endif
