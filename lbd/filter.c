/* The classic BPF program on the RX socket: only ARP, VLAN-tagged frames (to count them) and IPv4
 * frames to a configured VIP (or too short to say) reach the ring; frames for other hosts that a
 * bridge floods to us (PACKET_OTHERHOST) never do. */
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <stddef.h>

#include "lbd.h"

#define F_STMT(c, k) ((struct sock_filter){ (unsigned short)(c), 0, 0, (unsigned)(k) })
#define F_JUMP(c, k, t, f) ((struct sock_filter){ (unsigned short)(c), (unsigned char)(t), (unsigned char)(f), (unsigned)(k) })

/* Returns the number of instructions written, 0 if cap is too small. */
size_t filter_build(const uint32_t *vips, size_t n, struct sock_filter *out, size_t cap)
{
	size_t need = 10 + n + 2, i = 0;

	if (cap < need || n > 200)
		return 0;
	/* Layout: [0..9] header checks, [10..10+n-1] VIP compares, then DROP, ACCEPT. */
	size_t drop = 10 + n, accept = drop + 1;
#define TO(target) ((target) - i - 1)
	out[i] = F_STMT(BPF_LD | BPF_B | BPF_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OTHERHOST, TO(drop), 0); i++;
	out[i] = F_STMT(BPF_LD | BPF_H | BPF_ABS, 12); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0806, TO(accept), 0); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x8100, TO(accept), 0); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x88a8, TO(accept), 0); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, TO(drop)); i++;
	out[i] = F_STMT(BPF_LD | BPF_W | BPF_LEN, 0); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JGE | BPF_K, 34, 0, TO(accept)); i++;
	out[i] = F_STMT(BPF_LD | BPF_W | BPF_ABS, 30); i++;
	for (size_t v = 0; v < n; v++, i++)
		out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohl(vips[v]), TO(accept), 0);
	out[i++] = F_STMT(BPF_RET | BPF_K, 0);
	out[i++] = F_STMT(BPF_RET | BPF_K, 0x40000);
#undef TO
	return i;
}
