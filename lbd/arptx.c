/* ARP and Neighbour Discovery frames the main thread sends on its own packet socket: requests and
 * solicitations that resolve backends (and ask who else answers for a VIP), and gratuitous ARP and
 * unsolicited Neighbour Advertisements that announce the VIPs. One sendto per frame: these are a few
 * frames a second, not the forwarding path (workers answer ARP and NS for the VIPs in their TX rings). */
#include <errno.h>
#include <linux/if_packet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lbd.h"
#include "log.h"
#include "pkt.h"

static const uint8_t arptx_bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

int arptx_open(struct lbd *l)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = 0, .sll_ifindex = l->ifindex };

	l->ctl_tx_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (l->ctl_tx_fd < 0 || bind(l->ctl_tx_fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		log_err("%s: ARP socket: %s", __func__, strerror(errno));
		return -1;
	}
	return 0;
}

void arptx_close(struct lbd *l)
{
	if (l->ctl_tx_fd > 0)
		close(l->ctl_tx_fd);
	l->ctl_tx_fd = -1;
}

static int arptx_send(struct lbd *l, const uint8_t *frame, size_t len)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = l->ifindex, .sll_halen = 6 };

	memcpy(sll.sll_addr, frame, 6);
	if (sendto(l->ctl_tx_fd, frame, len, MSG_DONTWAIT, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		log_rl(LOG_LVL_WARN, "%s: sendto: %s", __func__, strerror(errno));
		return -1;
	}
	return 0;
}

/* A broadcast ARP frame of op with sender address spa, asking for (or announcing) tpa. */
static int arptx_emit(struct lbd *l, uint16_t op, uint32_t spa, uint32_t tpa)
{
	static const uint8_t zero[6];
	uint8_t frame[PKT_ARP_LEN];

	pkt_arp_build(frame, l->mac, arptx_bcast, op, spa, zero, tpa);
	return arptx_send(l, frame, sizeof(frame));
}

int arptx_request(struct lbd *l, const struct ipaddr *target)
{
	uint8_t frame[PKT_NS_LEN];

	l->ctr.arp_requests_sent++;
	/* Without an IPv4 address of our own (an IPv6 node on an interface with none), an ARP probe
	 * (RFC 5227: sender 0.0.0.0), which hosts answer too. */
	if (ipaddr_is_v4(target))
		return arptx_emit(l, 1, l->node_addr, ipaddr_v4(target));
	if (ipaddr_is_none(&l->node_addr6))
		return -1;
	pkt_ns_build(frame, l->mac, &l->node_addr6, target);
	return arptx_send(l, frame, sizeof(frame));
}

/* An unsolicited NA (RFC 4861 7.2.6) to all nodes, override set, so neighbours replace their entry. */
static int arptx_una(struct lbd *l, const struct ipaddr *vip)
{
	uint8_t frame[PKT_NA_LEN];

	pkt_una_build(frame, l->mac, vip);
	return arptx_send(l, frame, sizeof(frame));
}

void arptx_garp_burst(struct lbd *l)
{
	for (uint32_t n = 0; n < l->cfg->garp_count; n++) {
		for (size_t i = 0; i < l->n_vips; i++) {
			const struct ipaddr *vip = &l->vips[i];
			if (!ipaddr_is_v4(vip)) {
				if (arptx_una(l, vip) == 0)
					l->ctr.unsolicited_na_sent++;
				continue;
			}
			/* Gratuitous ARP as a request (sender = target = VIP), which every stack accepts. */
			if (arptx_emit(l, 1, ipaddr_v4(vip), ipaddr_v4(vip)) == 0)
				l->ctr.garp_sent++;
		}
	}
}
