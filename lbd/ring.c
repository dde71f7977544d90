/* PACKET_MMAP rings: a TPACKET_V2 (or V3 block) ring for RX, a TPACKET_V2 frame ring for TX, both with
 * virtio-net headers. V2 and TX slots are sized for one frame of the interface's MTU; a larger frame (a
 * GSO/GRO super-frame) takes the socket path beside the ring: the kernel queues it whole and marks its
 * slot TP_STATUS_COPY (PACKET_COPY_THRESH), and it leaves through a plain packet socket. Each ring is
 * owned by one worker thread; nothing here allocates after ring_open. */
#include <errno.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "log.h"
#include "ring.h"

#define RING_TX_DATA_OFF (TPACKET2_HDRLEN - sizeof(struct sockaddr_ll))
#define RING_VNET_LEN sizeof(struct virtio_net_hdr)
#define RING_TX_LINEAR_MAX 9216      /* frames up to a jumbo MTU go out as one linear buffer */
#define RING_RX_HEADROOM 96          /* V2 slot header + vnet header before the frame (macoff is 76) */
#define RING_SLOT_MIN 2048
#define RING_BIG_LEN (RING_VNET_LEN + 65536 + 4096)  /* a 64 KiB super-frame with its headers */
#define RING_RCVBUF (4 << 20)        /* socket memory for super-frames queued beside the RX ring */

struct ring {
	int ifindex;
	uint8_t mac[6];
	/* RX */
	int rx_fd;
	uint8_t *rx_map;
	size_t rx_map_len;
	unsigned rx_block_size, rx_block_nr;
	unsigned rx_cur;            /* block being read */
	uint32_t rx_left;           /* frames left in it; 0 = not started */
	uint8_t *rx_ptr;            /* next frame header in it */
	int rx_open;                /* rx_cur is held by us */
	int rx_version;
	unsigned rx_frame_nr;       /* V2 */
	struct tpacket2_hdr *rx_held; /* V2: frame handed out, returned on the next call */
	unsigned slot_size;         /* bytes of a V2 RX slot and of a TX slot */
	uint8_t *big;               /* RING_BIG_LEN: vnet header + a super-frame read off the socket */
	/* TX */
	int tx_fd;
	int tx_big_fd;              /* plain packet socket for frames larger than a TX slot */
	uint8_t *tx_map;
	size_t tx_map_len;
	unsigned tx_frame_nr;
	unsigned tx_head;
	int tx_pending;
	struct ring_stats st;
};

static int ring_setopt(int fd, int level, int opt, int val, const char *name)
{
	if (setsockopt(fd, level, opt, &val, sizeof(val)) < 0) {
		log_err("ring_open: setsockopt %s: %s", name, strerror(errno));
		return -1;
	}
	return 0;
}

static int ring_ifinfo(struct ring *r, const char *ifname)
{
	struct ifreq ifr;
	int fd = r->rx_fd;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		log_err("ring_open: interface %s: %s", ifname, strerror(errno));
		return -1;
	}
	r->ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		log_err("ring_open: %s hardware address: %s", ifname, strerror(errno));
		return -1;
	}
	memcpy(r->mac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
		log_err("ring_open: %s MTU: %s", ifname, strerror(errno));
		return -1;
	}
	/* One slot holds a frame of the MTU with a VLAN tag and the slot's headers, rounded up to a power
	 * of two (2 KiB for a 1500-byte MTU, 16 KiB for 9000). */
	r->slot_size = RING_SLOT_MIN;
	while (r->slot_size < RING_RX_HEADROOM + 18 + (unsigned)ifr.ifr_mtu && r->slot_size < (1u << 17))
		r->slot_size <<= 1;
	return 0;
}

/* V2: one fixed slot per frame and a wakeup per frame: lowest latency at low rates. A frame larger than
 * a slot is queued on the socket whole (PACKET_COPY_THRESH) and its slot says TP_STATUS_COPY. */
static int ring_setup_rx_v2(struct ring *r, const struct ring_params *p)
{
	struct tpacket_req req;
	int rcvbuf = RING_RCVBUF;

	if (ring_setopt(r->rx_fd, SOL_PACKET, PACKET_COPY_THRESH, 1, "PACKET_COPY_THRESH") < 0)
		return -1;
	if (setsockopt(r->rx_fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0 &&
	    setsockopt(r->rx_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0)
		log_warn("ring_open: SO_RCVBUF: %s", strerror(errno));
	memset(&req, 0, sizeof(req));
	req.tp_block_size = r->slot_size < 4096 ? 4096 : r->slot_size;
	req.tp_frame_size = r->slot_size;
	req.tp_frame_nr = p->rx_frame_nr;
	req.tp_block_nr = p->rx_frame_nr / (req.tp_block_size / r->slot_size);
	if (setsockopt(r->rx_fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0) {
		log_err("ring_open: PACKET_RX_RING: %s", strerror(errno));
		return -1;
	}
	r->rx_frame_nr = p->rx_frame_nr;
	r->rx_map_len = (size_t)req.tp_block_size * req.tp_block_nr;
	return 0;
}

/* V3: variable-size frames packed into blocks handed over when full or after rx_timeout_ms. */
static int ring_setup_rx_v3(struct ring *r, const struct ring_params *p)
{
	struct tpacket_req3 req;

	memset(&req, 0, sizeof(req));
	req.tp_block_size = p->rx_block_size;
	req.tp_block_nr = p->rx_block_nr;
	req.tp_frame_size = 2048;
	req.tp_frame_nr = p->rx_block_size / 2048 * p->rx_block_nr;
	req.tp_retire_blk_tov = p->rx_timeout_ms;
	if (setsockopt(r->rx_fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0) {
		log_err("ring_open: PACKET_RX_RING: %s", strerror(errno));
		return -1;
	}
	r->rx_block_size = p->rx_block_size;
	r->rx_block_nr = p->rx_block_nr;
	r->rx_map_len = (size_t)p->rx_block_size * p->rx_block_nr;
	return 0;
}

static int ring_open_rx(struct ring *r, const struct ring_params *p)
{
	struct sockaddr_ll sll;

	r->rx_version = p->rx_version == TPACKET_V2 ? TPACKET_V2 : TPACKET_V3;
	if (ring_setopt(r->rx_fd, SOL_PACKET, PACKET_VERSION, r->rx_version, "PACKET_VERSION") < 0 ||
	    ring_setopt(r->rx_fd, SOL_PACKET, PACKET_VNET_HDR, 1, "PACKET_VNET_HDR") < 0 ||
	    ring_setopt(r->rx_fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING") < 0)
		return -1;
	if (p->filter && ring_set_filter(r, p->filter, p->filter_len) < 0)
		return -1;
	if ((r->rx_version == TPACKET_V2 ? ring_setup_rx_v2(r, p) : ring_setup_rx_v3(r, p)) < 0)
		return -1;
	r->rx_map = mmap(NULL, r->rx_map_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->rx_fd, 0);
	if (r->rx_map == MAP_FAILED) {
		r->rx_map = NULL;
		log_err("ring_open: mmap RX ring: %s", strerror(errno));
		return -1;
	}
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = r->ifindex;
	if (bind(r->rx_fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		log_err("ring_open: bind RX socket: %s", strerror(errno));
		return -1;
	}
	if (p->fanout_group) {
		int arg = (p->fanout_group & 0xffff) | (PACKET_FANOUT_CBPF << 16);
		if (ring_setopt(r->rx_fd, SOL_PACKET, PACKET_FANOUT, arg, "PACKET_FANOUT") < 0)
			return -1;
	}
	return 0;
}

static int ring_open_tx(struct ring *r, const struct ring_params *p)
{
	struct tpacket_req req;
	struct sockaddr_ll sll;

	r->tx_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (r->tx_fd < 0) {
		log_err("ring_open: TX socket: %s", strerror(errno));
		return -1;
	}
	if (ring_setopt(r->tx_fd, SOL_PACKET, PACKET_VERSION, TPACKET_V2, "PACKET_VERSION") < 0 ||
	    ring_setopt(r->tx_fd, SOL_PACKET, PACKET_VNET_HDR, 1, "PACKET_VNET_HDR") < 0 ||
	    ring_setopt(r->tx_fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS") < 0 ||
	    ring_setopt(r->tx_fd, SOL_PACKET, PACKET_LOSS, 1, "PACKET_LOSS") < 0)
		return -1;
	memset(&req, 0, sizeof(req));
	req.tp_block_size = r->slot_size < 4096 ? 4096 : r->slot_size;
	req.tp_frame_size = r->slot_size;
	req.tp_frame_nr = p->tx_frame_nr;
	req.tp_block_nr = p->tx_frame_nr / (req.tp_block_size / r->slot_size);
	if (setsockopt(r->tx_fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof(req)) < 0) {
		log_err("ring_open: PACKET_TX_RING: %s", strerror(errno));
		return -1;
	}
	r->tx_frame_nr = p->tx_frame_nr;
	r->tx_map_len = (size_t)req.tp_block_size * req.tp_block_nr;
	r->tx_map = mmap(NULL, r->tx_map_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->tx_fd, 0);
	if (r->tx_map == MAP_FAILED) {
		r->tx_map = NULL;
		log_err("ring_open: mmap TX ring: %s", strerror(errno));
		return -1;
	}
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = 0;   /* send only: the protocol comes from each frame's Ethernet header */
	sll.sll_ifindex = r->ifindex;
	if (bind(r->tx_fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		log_err("ring_open: bind TX socket: %s", strerror(errno));
		return -1;
	}
	r->tx_big_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (r->tx_big_fd < 0) {
		log_err("ring_open: TX socket: %s", strerror(errno));
		return -1;
	}
	if (ring_setopt(r->tx_big_fd, SOL_PACKET, PACKET_VNET_HDR, 1, "PACKET_VNET_HDR") < 0 ||
	    ring_setopt(r->tx_big_fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS") < 0)
		return -1;
	if (bind(r->tx_big_fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		log_err("ring_open: bind TX socket: %s", strerror(errno));
		return -1;
	}
	return 0;
}

struct ring *ring_open(const struct ring_params *p)
{
	struct ring *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->tx_fd = -1;
	r->tx_big_fd = -1;
	/* Protocol 0 until bind, so nothing is queued before the filter and ring are in place. */
	r->rx_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (r->rx_fd < 0) {
		log_err("ring_open: RX socket: %s", strerror(errno));
		ring_close(r);
		return NULL;
	}
	r->big = malloc(RING_BIG_LEN);
	if (!r->big) {
		log_err("ring_open: out of memory");
		ring_close(r);
		return NULL;
	}
	if (ring_ifinfo(r, p->ifname) < 0 || ring_open_rx(r, p) < 0 || ring_open_tx(r, p) < 0) {
		ring_close(r);
		return NULL;
	}
	return r;
}

void ring_close(struct ring *r)
{
	if (!r)
		return;
	if (r->tx_map)
		munmap(r->tx_map, r->tx_map_len);
	if (r->rx_map)
		munmap(r->rx_map, r->rx_map_len);
	if (r->tx_big_fd >= 0)
		close(r->tx_big_fd);
	if (r->tx_fd >= 0)
		close(r->tx_fd);
	if (r->rx_fd >= 0)
		close(r->rx_fd);
	free(r->big);
	free(r);
}

int ring_rx_fd(const struct ring *r)
{
	return r->rx_fd;
}

int ring_ifindex(const struct ring *r)
{
	return r->ifindex;
}

const uint8_t *ring_mac(const struct ring *r)
{
	return r->mac;
}

int ring_set_filter(struct ring *r, const struct sock_filter *f, size_t len)
{
	struct sock_fprog prog = { .len = (unsigned short)len, .filter = (struct sock_filter *)f };

	if (setsockopt(r->rx_fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) {
		log_err("%s: SO_ATTACH_FILTER: %s", __func__, strerror(errno));
		return -1;
	}
	return 0;
}

/* Who owns a ring slot (a V2 RX frame, a V3 RX block, a TX frame) is said by its status word, and only
 * these four helpers touch that word. The side that takes a slot over loads the word with acquire, so it
 * sees the slot's bytes as the other side left them; the side that hands a slot over stores it with
 * release, after its own reads or writes of the slot.
 *
 *   RX  kernel -> user   ring_user_may_read    TP_STATUS_USER set: the frame (block) is ours to read
 *       user -> kernel   ring_kernel_may_fill  we are done with it: TP_STATUS_KERNEL
 *   TX  kernel -> user   ring_user_may_write   TP_STATUS_AVAILABLE (or WRONG_FORMAT): ours to fill
 *       user -> kernel   ring_kernel_may_send  filled: TP_STATUS_SEND_REQUEST, sent at the next kick */
static uint32_t ring_user_may_read(const uint32_t *status)
{
	uint32_t st = __atomic_load_n(status, __ATOMIC_ACQUIRE);

	return st & TP_STATUS_USER ? st : 0;
}

static void ring_kernel_may_fill(uint32_t *status)
{
	__atomic_store_n(status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
}

/* The TX slot's status: ours when TP_STATUS_AVAILABLE or TP_STATUS_WRONG_FORMAT (the kernel refused
 * the frame; PACKET_LOSS lets us reuse the slot). */
static uint32_t ring_user_may_write(const uint32_t *status)
{
	return __atomic_load_n(status, __ATOMIC_ACQUIRE);
}

static void ring_kernel_may_send(uint32_t *status)
{
	__atomic_store_n(status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
}

static struct tpacket_block_desc *ring_block(const struct ring *r, unsigned i)
{
	return (struct tpacket_block_desc *)(r->rx_map + (size_t)i * r->rx_block_size);
}

static struct tpacket2_hdr *ring_rx_slot(const struct ring *r, unsigned i)
{
	return (struct tpacket2_hdr *)(r->rx_map + (size_t)i * r->slot_size);
}

static void ring_rx_release_v2(struct ring *r)
{
	if (r->rx_held) {
		ring_kernel_may_fill(&r->rx_held->tp_status);
		r->rx_held = NULL;
	}
}

/* Reads the super-frame queued for a TP_STATUS_COPY slot into r->big; -1 (counted as a drop) if it is
 * not the frame the slot announced. */
static int ring_rx_copied(struct ring *r, const struct tpacket2_hdr *h, struct ring_frame *f)
{
	ssize_t n = recv(r->rx_fd, r->big, RING_BIG_LEN, MSG_DONTWAIT | MSG_TRUNC);

	if (n < (ssize_t)RING_VNET_LEN || n > (ssize_t)RING_BIG_LEN || n - RING_VNET_LEN != h->tp_len) {
		r->st.rx_drops++;
		return -1;
	}
	f->vnet = (const struct virtio_net_hdr *)r->big;
	f->data = r->big + RING_VNET_LEN;
	f->len = f->wire_len = h->tp_len;
	return 0;
}

static int ring_rx_next_v2(struct ring *r, struct ring_frame *f)
{
	struct tpacket2_hdr *h;
	uint32_t st;

	for (;;) {
		ring_rx_release_v2(r);
		h = ring_rx_slot(r, r->rx_cur);
		if (!(st = ring_user_may_read(&h->tp_status)))
			return -1;
		r->rx_held = h;
		r->rx_cur = (r->rx_cur + 1) % r->rx_frame_nr;
		f->status = st;
		f->vlan_tci = (st & TP_STATUS_VLAN_VALID) ? h->tp_vlan_tci : 0;
		if (st & TP_STATUS_COPY) {
			if (ring_rx_copied(r, h, f) < 0)
				continue;
			return 0;
		}
		if (h->tp_snaplen < h->tp_len) {
			/* Larger than a slot, and no socket memory left to queue it whole: lost. */
			r->st.rx_drops++;
			continue;
		}
		f->data = (uint8_t *)h + h->tp_mac;
		f->len = h->tp_snaplen;
		f->wire_len = h->tp_len;
		f->vnet = (const struct virtio_net_hdr *)(f->data - RING_VNET_LEN);
		return 0;
	}
}

void ring_rx_done(struct ring *r)
{
	if (r->rx_version == TPACKET_V2) {
		ring_rx_release_v2(r);
		return;
	}
	if (r->rx_open && r->rx_left == 0) {
		ring_kernel_may_fill(&ring_block(r, r->rx_cur)->hdr.bh1.block_status);
		r->rx_open = 0;
		r->rx_cur = (r->rx_cur + 1) % r->rx_block_nr;
	}
}

int ring_rx_next(struct ring *r, struct ring_frame *f)
{
	struct tpacket3_hdr *h;

	if (r->rx_version == TPACKET_V2)
		return ring_rx_next_v2(r, f);
	for (;;) {
		if (r->rx_open && r->rx_left > 0)
			break;
		ring_rx_done(r);
		struct tpacket_block_desc *b = ring_block(r, r->rx_cur);
		if (!ring_user_may_read(&b->hdr.bh1.block_status))
			return -1;
		r->rx_open = 1;
		r->rx_left = b->hdr.bh1.num_pkts;
		r->rx_ptr = (uint8_t *)b + b->hdr.bh1.offset_to_first_pkt;
	}
	h = (struct tpacket3_hdr *)r->rx_ptr;
	f->data = r->rx_ptr + h->tp_mac;
	f->len = h->tp_snaplen;
	f->wire_len = h->tp_len;
	f->status = h->tp_status;
	f->vlan_tci = (h->tp_status & TP_STATUS_VLAN_VALID) ? h->hv1.tp_vlan_tci : 0;
	f->vnet = (const struct virtio_net_hdr *)(f->data - RING_VNET_LEN);
	r->rx_left--;
	r->rx_ptr += h->tp_next_offset;
	return 0;
}

static struct tpacket2_hdr *ring_tx_slot(const struct ring *r, unsigned i)
{
	return (struct tpacket2_hdr *)(r->tx_map + (size_t)i * r->slot_size);
}

uint8_t *ring_tx_reserve(struct ring *r, uint32_t len, struct virtio_net_hdr **vnet)
{
	struct tpacket2_hdr *h = ring_tx_slot(r, r->tx_head);
	uint32_t st;

	if (len + RING_VNET_LEN + RING_TX_DATA_OFF > r->slot_size) {
		r->st.tx_wrong_format++;
		return NULL;
	}
	st = ring_user_may_write(&h->tp_status);
	if (st != TP_STATUS_AVAILABLE && st != TP_STATUS_WRONG_FORMAT && r->tx_pending) {
		/* The ring is full of frames not yet handed to the kernel: send them, then look again. */
		ring_tx_kick(r);
		st = ring_user_may_write(&h->tp_status);
	}
	if (st == TP_STATUS_WRONG_FORMAT) {
		r->st.tx_wrong_format++;
	} else if (st != TP_STATUS_AVAILABLE) {
		r->st.tx_full++;
		return NULL;
	}
	*vnet = (struct virtio_net_hdr *)((uint8_t *)h + RING_TX_DATA_OFF);
	return (uint8_t *)h + RING_TX_DATA_OFF + RING_VNET_LEN;
}

void ring_tx_commit(struct ring *r, uint32_t len)
{
	struct tpacket2_hdr *h = ring_tx_slot(r, r->tx_head);
	struct virtio_net_hdr *vh = (struct virtio_net_hdr *)((uint8_t *)h + RING_TX_DATA_OFF);

	/* hdr_len is how much of the frame the kernel copies into the socket buffer; the rest it references
	 * in the ring as zero-copy fragments, which a veth or bridge must then copy into freshly allocated
	 * pages. An ordinary frame is small: copy all of it. A GSO super-frame keeps its header length. */
	if (vh->gso_type == VIRTIO_NET_HDR_GSO_NONE && len <= RING_TX_LINEAR_MAX)
		vh->hdr_len = (__virtio16)len;

	h->tp_len = len + RING_VNET_LEN;
	ring_kernel_may_send(&h->tp_status);
	r->tx_head = (r->tx_head + 1) % r->tx_frame_nr;
	r->tx_pending++;
}

void ring_tx_kick(struct ring *r)
{
	if (!r->tx_pending)
		return;
	/* One syscall sends every committed frame. EAGAIN/ENOBUFS leave frames queued for the next kick. */
	if (sendto(r->tx_fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN && errno != ENOBUFS)
		log_rl(LOG_LVL_WARN, "%s: sendto: %s", __func__, strerror(errno));
	r->tx_pending = 0;
	r->st.tx_kicks++;
}

/* A frame larger than a TX slot leaves through the plain socket, after the frames before it. */
static int ring_tx_big(struct ring *r, const struct ring_frame *f, const uint8_t dst[6], const uint8_t src[6])
{
	struct virtio_net_hdr vh = *f->vnet;
	uint8_t eth[12];
	struct iovec iov[3] = {
		{ .iov_base = &vh, .iov_len = RING_VNET_LEN },
		{ .iov_base = eth, .iov_len = 12 },
		{ .iov_base = f->data + 12, .iov_len = f->len - 12 },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };

	vh.flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM;
	memcpy(eth, dst, 6);
	memcpy(eth + 6, src, 6);
	ring_tx_kick(r);
	if (sendmsg(r->tx_big_fd, &msg, MSG_DONTWAIT) < 0) {
		if (errno == EAGAIN || errno == ENOBUFS) {
			r->st.tx_full++;
		} else {
			r->st.tx_wrong_format++;
			log_rl(LOG_LVL_WARN, "%s: sendmsg (%u bytes): %s", __func__, f->len, strerror(errno));
		}
		return -1;
	}
	return 0;
}

int ring_tx_forward(struct ring *r, const struct ring_frame *f, const uint8_t dst[6], const uint8_t src[6])
{
	struct virtio_net_hdr *vh;
	uint8_t *d;

	if (f->len + RING_VNET_LEN + RING_TX_DATA_OFF > r->slot_size)
		return ring_tx_big(r, f, dst, src);
	d = ring_tx_reserve(r, f->len, &vh);
	if (!d)
		return -1;
	memcpy(vh, f->vnet, RING_VNET_LEN);
	/* The received vnet header may carry DATA_VALID, which has no meaning on transmit. */
	vh->flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM;
	memcpy(d, dst, 6);
	memcpy(d + 6, src, 6);
	memcpy(d + 12, f->data + 12, f->len - 12);
	ring_tx_commit(r, f->len);
	return 0;
}

void ring_stats(struct ring *r, struct ring_stats *out)
{
	struct tpacket_stats_v3 s;
	socklen_t len = sizeof(s);

	/* The kernel resets its counters on every read, so accumulate them here. */
	/* struct tpacket_stats (V2) is the head of struct tpacket_stats_v3. */
	if (r->rx_version == TPACKET_V2)
		s.tp_freeze_q_cnt = 0, len = sizeof(struct tpacket_stats);
	if (getsockopt(r->rx_fd, SOL_PACKET, PACKET_STATISTICS, &s, &len) == 0) {
		r->st.rx_drops += s.tp_drops;
		r->st.rx_freeze += s.tp_freeze_q_cnt;
	}
	*out = r->st;
}
