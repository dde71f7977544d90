/* AF_PACKET rings of one forwarding worker: a TPACKET_V2 (or V3) RX ring and a TPACKET_V2 TX ring on
 * sockets bound to the LAN interface, all with PACKET_VNET_HDR so checksum-partial frames and GSO
 * super-frames pass through intact (DESIGN.md trap 2). Who owns a ring slot, the kernel or lbd,
 * changes only in ring.c's four named helpers (ring_user_may_read, ring_kernel_may_fill,
 * ring_user_may_write, ring_kernel_may_send), with acquire on taking a slot and release on handing it
 * over; docs/ARCHITECTURE.md says which does which transition. */
#ifndef DSR_RING_H
#define DSR_RING_H

#include <linux/filter.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <stddef.h>
#include <stdint.h>

struct ring_stats {
	uint64_t rx_drops;        /* PACKET_STATISTICS tp_drops, accumulated */
	uint64_t rx_freeze;       /* queue freezes (V3) */
	uint64_t tx_full;         /* no free TX slot: frame dropped */
	uint64_t tx_wrong_format; /* slots the kernel refused (PACKET_LOSS lets the ring continue) */
	uint64_t tx_kicks;
};

struct ring_params {
	const char *ifname;
	int rx_version;           /* TPACKET_V2 or TPACKET_V3 */
	unsigned rx_block_size;   /* V3: bytes, a power of two that holds a 64 KiB super-frame */
	unsigned rx_block_nr;
	unsigned rx_timeout_ms;   /* V3: block retire timeout */
	unsigned rx_frame_nr;     /* V2: slots (each sized for one frame of the interface MTU) */
	unsigned tx_frame_nr;     /* TX slots, sized the same */
	int fanout_group;         /* 0 = no fanout; else a PACKET_FANOUT_CBPF group (filter_fanout_build) */
	const struct sock_filter *filter;
	size_t filter_len;
};

/* One received frame, borrowed from the RX ring until the block is released. */
struct ring_frame {
	uint8_t *data;                        /* Ethernet header */
	uint32_t len;                         /* bytes captured */
	uint32_t wire_len;                    /* original length */
	const struct virtio_net_hdr *vnet;    /* precedes data in the ring */
	uint32_t status;                      /* TP_STATUS_* bits */
	uint16_t vlan_tci;
};

struct ring;
struct ring *ring_open(const struct ring_params *p);
void ring_close(struct ring *r);
int ring_rx_fd(const struct ring *r);
int ring_set_filter(struct ring *r, const struct sock_filter *f, size_t len);
int ring_ifindex(const struct ring *r);
const uint8_t *ring_mac(const struct ring *r);

/* RX: iterate frames of ready blocks. ring_rx_next() returns 0 and fills *f, or -1 when no frame is
 * ready. Frames stay valid until the next call to ring_rx_next or ring_rx_done. */
int ring_rx_next(struct ring *r, struct ring_frame *f);
/* Returns the block in progress (if fully read) to the kernel. */
void ring_rx_done(struct ring *r);

/* TX: reserve a slot for a frame of len bytes (plus the vnet header), fill it, commit it. Frames are
 * sent in batches by ring_tx_kick (one sendto for all committed frames). */
uint8_t *ring_tx_reserve(struct ring *r, uint32_t len, struct virtio_net_hdr **vnet);
void ring_tx_commit(struct ring *r, uint32_t len);
void ring_tx_kick(struct ring *r);
/* Copies a ring frame's bytes to the TX ring with a new Ethernet header; -1 if no slot is free. */
int ring_tx_forward(struct ring *r, const struct ring_frame *f, const uint8_t dst[6], const uint8_t src[6]);

void ring_stats(struct ring *r, struct ring_stats *out);

#endif
