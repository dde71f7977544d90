/* ARP frames the main thread sends on its own packet socket: requests that resolve backends (and ask
 * who else answers for a VIP), and gratuitous ARP that announces the VIPs. One sendto per frame: these
 * are a few frames a second, not the forwarding path (workers answer ARP requests in their TX rings). */
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

/* A broadcast ARP frame of op with sender address spa, asking for (or announcing) tpa. */
static int arptx_emit(struct lbd *l, uint16_t op, uint32_t spa, uint32_t tpa)
{
	static const uint8_t zero[6];
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = l->ifindex, .sll_halen = 6 };
	uint8_t frame[PKT_ARP_LEN];

	pkt_arp_build(frame, l->mac, arptx_bcast, op, spa, zero, tpa);
	memcpy(sll.sll_addr, arptx_bcast, 6);
	if (sendto(l->ctl_tx_fd, frame, sizeof(frame), MSG_DONTWAIT, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		log_rl(LOG_LVL_WARN, "%s: sendto: %s", __func__, strerror(errno));
		return -1;
	}
	return 0;
}

int arptx_request(struct lbd *l, uint32_t target)
{
	l->ctr.arp_requests_sent++;
	return arptx_emit(l, 1, l->node_addr, target);
}

void arptx_garp_burst(struct lbd *l)
{
	for (uint32_t n = 0; n < l->cfg->garp_count; n++) {
		for (size_t i = 0; i < l->n_vips; i++) {
			/* Gratuitous ARP as a request (sender = target = VIP), which every stack accepts. */
			if (arptx_emit(l, 1, l->vips[i], l->vips[i]) == 0)
				l->ctr.garp_sent++;
		}
	}
}
