/* Frame parser of the forwarding path: validates Ethernet, ARP, IPv4, TCP/UDP and ICMP headers of a
 * received frame without trusting any length field, and says what the frame is; and the one frame lbd
 * writes from scratch, ARP. Pure and allocation-free, so hostile frames are unit-tested directly. */
#ifndef DSR_PKT_H
#define DSR_PKT_H

#include <stdint.h>

enum pkt_kind {
	PKT_ARP,
	PKT_IPV4,
	PKT_VLAN,        /* an 802.1Q/802.1ad tag still in the frame */
	PKT_OTHER,       /* another ethertype */
};

enum pkt_err {
	PKT_OK,
	PKT_TRUNCATED,   /* shorter than its headers */
	PKT_BAD_VERSION,
	PKT_BAD_IHL,
	PKT_BAD_LEN,     /* IP total length inconsistent with the frame */
	PKT_BAD_ARP,
};

struct pkt {
	enum pkt_kind kind;
	uint16_t ethertype;
	/* ARP (Ethernet/IPv4 only) */
	uint16_t arp_op;
	const uint8_t *arp_sha;
	uint32_t arp_spa, arp_tpa;      /* network order */
	/* IPv4 */
	uint32_t saddr, daddr;          /* network order */
	uint8_t proto;
	uint16_t ihl;                   /* header bytes */
	uint16_t ip_len;                /* total length from the header */
	uint16_t ip_id;                 /* identification, network order: names a datagram's fragments */
	uint8_t frag;                   /* part of a fragmented datagram */
	uint8_t later_frag;             /* non-first fragment: no L4 header */
	uint8_t have_ports;
	uint16_t sport, dport;          /* network order */
	uint8_t tcp_flags;
	/* ICMP */
	uint8_t icmp_type, icmp_code;
	uint8_t have_inner;             /* error message quoting an IPv4 TCP/UDP header */
	uint32_t in_saddr, in_daddr;
	uint8_t in_proto;
	uint16_t in_sport, in_dport;
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

#endif
