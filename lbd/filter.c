/* The classic BPF programs of lbd's packet sockets. The RX filter lets through only ARP, VLAN-tagged
 * frames (to count them), IPv4 and IPv6 frames to a configured VIP (or too short to say), and ICMPv6
 * neighbour discovery (lbd answers Neighbour Solicitations for its IPv6 VIPs and learns backend MACs
 * from Neighbour Advertisements); frames for other hosts that a bridge floods to us (PACKET_OTHERHOST)
 * never do. The fanout program pins each client->VIP flow of either family to one worker, and
 * filter_fanout_index computes the same choice in C. */
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <stddef.h>

#include "ipaddr.h"
#include "lbd.h"

#define F_STMT(c, k) ((struct sock_filter){ (unsigned short)(c), 0, 0, (unsigned)(k) })
#define F_JUMP(c, k, t, f) ((struct sock_filter){ (unsigned short)(c), (unsigned char)(t), (unsigned char)(f), (unsigned)(k) })

#define FILTER_ACCEPT 0x40000
#define FILTER_V4_MAX 200       /* IPv4 compares jump to one shared accept: 8-bit jump offsets */
#define FILTER_V6_EACH 9        /* instructions per IPv6 VIP */

/* Returns the number of instructions written, 0 if cap is too small (or the program would be longer
 * than the kernel takes).
 *
 * Layout, with A = the ethertype across the first jumps:
 *   [0..9]      OTHERHOST -> drop4; ARP, 802.1Q, 802.1ad -> accept4; not IPv4 -> v6; IPv4 too short
 *               to say -> accept4; A = destination address
 *   n4 compares, drop4, accept4
 *   v6:         not IPv6 -> ret 0; too short to say (< 14 + 40) -> ret accept; then per IPv6 VIP nine
 *               instructions: the four words of the destination, lowest first, each mismatch skipping
 *               to the next VIP, and a `ret accept` of its own, so no jump spans more than one VIP
 *   ND:         next header ICMPv6 (58, no extension header: RFC 4861 messages carry none) and type
 *               133..137 (router and neighbour discovery, redirect) -> accept6, anything else -> drop6.
 *               An NS for a VIP goes to its solicited-node multicast address and an NA from a backend
 *               to lbd's own address (or all-nodes): accepting the types covers both, whatever the
 *               destination, at the cost of the rare router solicitations and advertisements.
 * IPv4 frames run exactly the instructions they ran before IPv6. */
size_t filter_build(const struct ipaddr *vips, size_t n, struct sock_filter *out, size_t cap)
{
	size_t n4 = 0, n6, need, drop4, accept4, i = 0;

	for (size_t v = 0; v < n; v++)
		n4 += (size_t)ipaddr_is_v4(&vips[v]);
	n6 = n - n4;
	need = 10 + n4 + 2 + 5 + FILTER_V6_EACH * n6 + 7;
	if (n4 > FILTER_V4_MAX || need > BPF_MAXINSNS || cap < need)
		return 0;
	drop4 = 10 + n4;
	accept4 = drop4 + 1;
#define TO(target) ((target) - i - 1)
	out[i] = F_STMT(BPF_LD | BPF_B | BPF_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OTHERHOST, TO(drop4), 0); i++;
	out[i] = F_STMT(BPF_LD | BPF_H | BPF_ABS, 12); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0806, TO(accept4), 0); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x8100, TO(accept4), 0); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x88a8, TO(accept4), 0); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, TO(accept4 + 1)); i++;
	out[i] = F_STMT(BPF_LD | BPF_W | BPF_LEN, 0); i++;
	out[i] = F_JUMP(BPF_JMP | BPF_JGE | BPF_K, 34, 0, TO(accept4)); i++;
	out[i] = F_STMT(BPF_LD | BPF_W | BPF_ABS, 30); i++;
	for (size_t v = 0; v < n; v++) {
		if (ipaddr_is_v4(&vips[v])) {
			out[i] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohl(ipaddr_v4(&vips[v])), TO(accept4), 0);
			i++;
		}
	}
	out[i++] = F_STMT(BPF_RET | BPF_K, 0);
	out[i++] = F_STMT(BPF_RET | BPF_K, FILTER_ACCEPT);
	/* IPv6; A is still the ethertype. */
	out[i++] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, 1, 0);
	out[i++] = F_STMT(BPF_RET | BPF_K, 0);
	out[i++] = F_STMT(BPF_LD | BPF_W | BPF_LEN, 0);
	out[i++] = F_JUMP(BPF_JMP | BPF_JGE | BPF_K, 14 + 40, 1, 0);
	out[i++] = F_STMT(BPF_RET | BPF_K, FILTER_ACCEPT);
	for (size_t v = 0; v < n; v++) {
		if (ipaddr_is_v4(&vips[v]))
			continue;
		for (int w = 3; w >= 0; w--) {
			unsigned char skip = (unsigned char)(2 * w + 1);     /* to the next VIP's first load */
			out[i++] = F_STMT(BPF_LD | BPF_W | BPF_ABS, 14 + 24 + 4 * w);
			out[i++] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohl(vips[v].w[w]), 0, skip);
		}
		out[i++] = F_STMT(BPF_RET | BPF_K, FILTER_ACCEPT);
	}
	out[i++] = F_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 6);
	out[i++] = F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 58, 0, 4);
	out[i++] = F_STMT(BPF_LD | BPF_B | BPF_ABS, 14 + 40);
	out[i++] = F_JUMP(BPF_JMP | BPF_JGE | BPF_K, 133, 0, 2);
	out[i++] = F_JUMP(BPF_JMP | BPF_JGT | BPF_K, 137, 1, 0);
	out[i++] = F_STMT(BPF_RET | BPF_K, FILTER_ACCEPT);
	out[i++] = F_STMT(BPF_RET | BPF_K, 0);
#undef TO
	return i;
}

/* The fanout program gives each client->VIP flow a fixed worker, and the same choice is computed in C
 * (filter_fanout_index), so the main thread knows which worker's table a flow from the peer belongs
 * in. The kernel's own flow hash (PACKET_FANOUT_HASH) uses a random per-boot seed and cannot be
 * reproduced here. Fanout programs see the frame from the IP header on.
 *
 * The hash: the xor of the address words (host order; an IPv4 address is one word, an IPv6 address
 * four), xor the ports (sport << 16 | dport), then a 32-bit mix. An IPv4-mapped address (::ffff:a.b.c.d)
 * folds to a.b.c.d, as its 0xffff word cancels against the other address's, so one C function serves
 * both families and IPv4 keeps the very choice it had before IPv6.
 * - TCP/UDP: addresses and ports. IPv4 fragments and IPv6 frames with a fragment header (next header 44
 *   right after the fixed header): addresses only, so every fragment of a datagram meets the others.
 * - An ICMP or ICMPv6 error (ICMP 3, 11, 12; ICMPv6 1..4, Packet Too Big among them) is hashed by the
 *   flow it quotes, reversed (the quote is the backend's reply VIP -> client), so it reaches the worker
 *   that owns that flow. For ICMPv6 the quoted header must be TCP or UDP right after its fixed header;
 *   a quote with an extension header (or of another protocol) is hashed on the quoted addresses alone.
 * - Anything else (echo, neighbour discovery, other protocols) and any IPv6 frame whose fixed header is
 *   followed by an extension header other than a fragment header: addresses only. The C side cannot
 *   know that a flow's frames carry extension headers, so worker_of (sync) places such a flow by its
 *   ports, likely on another worker than the one its frames reach: that worker does not find the synced
 *   entry and picks the backend afresh by Maglev (the same one while the backend set has not changed),
 *   and the synced entry idles out unused. Plain TCP/UDP, what sync is for, always agrees.
 * - A frame too short for a load the program makes goes to worker 0 (the kernel's rule: the program
 *   returns 0). */
unsigned filter_fanout_index(const struct ipaddr *src, const struct ipaddr *dst, uint16_t sport, uint16_t dport,
			     unsigned n)
{
	uint32_t h = (uint32_t)sport << 16 | dport;

	for (int i = 0; i < 4; i++)
		h ^= ntohl(src->w[i]) ^ ntohl(dst->w[i]);
	h ^= h >> 16;
	h *= 0x45d9f3bu;
	h ^= h >> 16;
	return n ? h % n : 0;
}

/* A tiny forward-only assembler: jumps name a label, labels are placed later, every jump is patched;
 * a jump that cannot be recorded or is too long for its 8-bit field fails the build. */
enum { L_V6, L_V6_L4, L_V6_ICMP, L_V6_QUOTE, L_PORTS0, L_L4, L_L4_X, L_ICMP, L_ERR, L_ERR_PORTS, L_HASH, L_NOT_IP };

struct filter_asm {
	struct sock_filter *out;
	size_t n, cap;
	struct { size_t at; int label; char field; } fix[32];
	size_t n_fix;
	int bad;
};

static size_t fa_emit(struct filter_asm *a, struct sock_filter ins)
{
	if (a->n < a->cap)
		a->out[a->n] = ins;
	return a->n++;
}

/* field: 't' (jt), 'f' (jf) or 'a' (ja's k) of the instruction at `at` goes to `label`. */
static void fa_jump(struct filter_asm *a, size_t at, char field, int label)
{
	if (a->n_fix == sizeof(a->fix) / sizeof(a->fix[0])) {
		a->bad = 1;
		return;
	}
	a->fix[a->n_fix].at = at;
	a->fix[a->n_fix].label = label;
	a->fix[a->n_fix].field = field;
	a->n_fix++;
}

static void fa_label(struct filter_asm *a, int label)
{
	for (size_t i = 0; i < a->n_fix; i++) {
		size_t at = a->fix[i].at;
		if (a->fix[i].label != label || at >= a->cap)
			continue;
		size_t off = a->n - at - 1;
		if (a->fix[i].field != 'a' && off > 255)
			a->bad = 1;
		else if (a->fix[i].field == 't')
			a->out[at].jt = (unsigned char)off;
		else if (a->fix[i].field == 'f')
			a->out[at].jf = (unsigned char)off;
		else
			a->out[at].k = (unsigned)off;
	}
}

/* A conditional jump (BPF_JEQ, BPF_JGT, BPF_JSET with k) to `label` when taken ('t') or not ('f');
 * the other way falls through. */
static void fa_jcond(struct filter_asm *a, unsigned code, unsigned k, char field, int label)
{
	fa_jump(a, fa_emit(a, F_JUMP(BPF_JMP | code | BPF_K, k, 0, 0)), field, label);
}

static void fa_goto(struct filter_asm *a, int label)
{
	fa_jump(a, fa_emit(a, F_STMT(BPF_JMP | BPF_JA, 0)), 'a', label);
}

/* M[0] = the xor of the eight 32-bit words of the IPv6 addresses at off..off+31. */
static void fa_fold_v6(struct filter_asm *a, unsigned off)
{
	fa_emit(a, F_STMT(BPF_LD | BPF_W | BPF_ABS, off));
	for (unsigned w = 1; w < 8; w++) {
		fa_emit(a, F_STMT(BPF_MISC | BPF_TAX, 0));
		fa_emit(a, F_STMT(BPF_LD | BPF_W | BPF_ABS, off + 4 * w));
		fa_emit(a, F_STMT(BPF_ALU | BPF_XOR | BPF_X, 0));
	}
	fa_emit(a, F_STMT(BPF_ST, 0));
}

size_t filter_fanout_build(unsigned n_workers, struct sock_filter *out, size_t cap)
{
	struct filter_asm a = { .out = out, .cap = cap };
	size_t j;

	if (n_workers == 0)
		return 0;
	fa_emit(&a, F_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_PROTOCOL));
	j = fa_emit(&a, F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 0));
	fa_jump(&a, j, 'f', L_V6);
	/* M[0] = saddr ^ daddr */
	fa_emit(&a, F_STMT(BPF_LD | BPF_W | BPF_ABS, 12));
	fa_emit(&a, F_STMT(BPF_MISC | BPF_TAX, 0));
	fa_emit(&a, F_STMT(BPF_LD | BPF_W | BPF_ABS, 16));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_XOR | BPF_X, 0));
	fa_emit(&a, F_STMT(BPF_ST, 0));
	/* fragments: addresses only */
	fa_emit(&a, F_STMT(BPF_LD | BPF_H | BPF_ABS, 6));
	fa_jcond(&a, BPF_JSET, 0x3fff, 't', L_PORTS0);
	fa_emit(&a, F_STMT(BPF_LD | BPF_B | BPF_ABS, 9));
	fa_jcond(&a, BPF_JEQ, 6, 't', L_L4);
	fa_jcond(&a, BPF_JEQ, 17, 't', L_L4);
	j = fa_emit(&a, F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 0));
	fa_jump(&a, j, 't', L_ICMP);
	fa_jump(&a, j, 'f', L_PORTS0);
	/* IPv6 (A is still the protocol): M[0] = the fold of both addresses; the next header right after
	 * the fixed header decides, and all but TCP, UDP and ICMPv6 hash on the addresses only. The ports
	 * are read by the IPv4 code below, with X set to where IPv4 would have it. */
	fa_label(&a, L_V6);
	fa_jcond(&a, BPF_JEQ, 0x86dd, 'f', L_NOT_IP);
	fa_fold_v6(&a, 8);
	fa_emit(&a, F_STMT(BPF_LD | BPF_B | BPF_ABS, 6));
	fa_jcond(&a, BPF_JEQ, 58, 't', L_V6_ICMP);
	fa_jcond(&a, BPF_JEQ, 6, 't', L_V6_L4);
	fa_jcond(&a, BPF_JEQ, 17, 'f', L_PORTS0);
	fa_label(&a, L_V6_L4);
	fa_emit(&a, F_STMT(BPF_LDX | BPF_IMM, 40));
	fa_goto(&a, L_L4_X);
	/* ICMPv6 errors (types 1..4) quote the backend's reply from offset 48: M[0] = the fold of the quoted
	 * addresses; its ports at 88 (VIP side) and 90 (client side) if TCP or UDP follows its fixed header */
	fa_label(&a, L_V6_ICMP);
	fa_emit(&a, F_STMT(BPF_LD | BPF_B | BPF_ABS, 40));
	fa_jcond(&a, BPF_JGT, 4, 't', L_PORTS0);
	fa_jcond(&a, BPF_JEQ, 0, 't', L_PORTS0);
	fa_fold_v6(&a, 48 + 8);
	fa_emit(&a, F_STMT(BPF_LD | BPF_B | BPF_ABS, 48 + 6));
	fa_jcond(&a, BPF_JEQ, 6, 't', L_V6_QUOTE);
	fa_jcond(&a, BPF_JEQ, 17, 'f', L_PORTS0);
	fa_label(&a, L_V6_QUOTE);
	fa_emit(&a, F_STMT(BPF_LDX | BPF_IMM, 48 + 40 - 8));
	fa_goto(&a, L_ERR_PORTS);
	/* TCP/UDP: M[1] = sport << 16 | dport, X = where the L4 header starts */
	fa_label(&a, L_L4);
	fa_emit(&a, F_STMT(BPF_LDX | BPF_B | BPF_MSH, 0));
	fa_label(&a, L_L4_X);
	fa_emit(&a, F_STMT(BPF_LD | BPF_H | BPF_IND, 0));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_LSH | BPF_K, 16));
	fa_emit(&a, F_STMT(BPF_ST, 1));
	fa_emit(&a, F_STMT(BPF_LD | BPF_H | BPF_IND, 2));
	fa_emit(&a, F_STMT(BPF_LDX | BPF_MEM, 1));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_OR | BPF_X, 0));
	fa_emit(&a, F_STMT(BPF_ST, 1));
	fa_goto(&a, L_HASH);
	/* ICMP: errors are hashed by the flow they quote, reversed; other ICMP has no ports */
	fa_label(&a, L_ICMP);
	fa_emit(&a, F_STMT(BPF_LDX | BPF_B | BPF_MSH, 0));
	fa_emit(&a, F_STMT(BPF_LD | BPF_B | BPF_IND, 0));
	fa_jcond(&a, BPF_JEQ, 3, 't', L_ERR);
	fa_jcond(&a, BPF_JEQ, 11, 't', L_ERR);
	j = fa_emit(&a, F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 12, 0, 0));
	fa_jump(&a, j, 't', L_ERR);
	fa_jump(&a, j, 'f', L_PORTS0);
	fa_label(&a, L_ERR);
	/* X = outer IHL: quoted addresses at X+20, X+24 */
	fa_emit(&a, F_STMT(BPF_LD | BPF_W | BPF_IND, 20));
	fa_emit(&a, F_STMT(BPF_ST, 2));
	fa_emit(&a, F_STMT(BPF_LD | BPF_W | BPF_IND, 24));
	fa_emit(&a, F_STMT(BPF_LDX | BPF_MEM, 2));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_XOR | BPF_X, 0));
	fa_emit(&a, F_STMT(BPF_ST, 0));
	/* X = outer IHL + quoted IHL: quoted ports at X+8 (VIP side), X+10 (client side) */
	fa_emit(&a, F_STMT(BPF_LDX | BPF_B | BPF_MSH, 0));
	fa_emit(&a, F_STMT(BPF_LD | BPF_B | BPF_IND, 8));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_AND | BPF_K, 0x0f));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_LSH | BPF_K, 2));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_ADD | BPF_X, 0));
	fa_emit(&a, F_STMT(BPF_MISC | BPF_TAX, 0));
	fa_label(&a, L_ERR_PORTS);
	fa_emit(&a, F_STMT(BPF_LD | BPF_H | BPF_IND, 10));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_LSH | BPF_K, 16));
	fa_emit(&a, F_STMT(BPF_ST, 1));
	fa_emit(&a, F_STMT(BPF_LD | BPF_H | BPF_IND, 8));
	fa_emit(&a, F_STMT(BPF_LDX | BPF_MEM, 1));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_OR | BPF_X, 0));
	fa_emit(&a, F_STMT(BPF_ST, 1));
	fa_goto(&a, L_HASH);
	/* no ports */
	fa_label(&a, L_PORTS0);
	fa_emit(&a, F_STMT(BPF_LD | BPF_IMM, 0));
	fa_emit(&a, F_STMT(BPF_ST, 1));
	/* h = M[0] ^ M[1]; h ^= h >> 16; h *= 0x45d9f3b; h ^= h >> 16; return h % n */
	fa_label(&a, L_HASH);
	fa_emit(&a, F_STMT(BPF_LD | BPF_MEM, 0));
	fa_emit(&a, F_STMT(BPF_LDX | BPF_MEM, 1));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_XOR | BPF_X, 0));
	fa_emit(&a, F_STMT(BPF_MISC | BPF_TAX, 0));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_RSH | BPF_K, 16));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_XOR | BPF_X, 0));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_MUL | BPF_K, 0x45d9f3b));
	fa_emit(&a, F_STMT(BPF_MISC | BPF_TAX, 0));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_RSH | BPF_K, 16));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_XOR | BPF_X, 0));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_MOD | BPF_K, n_workers));
	fa_emit(&a, F_STMT(BPF_RET | BPF_A, 0));
	fa_label(&a, L_NOT_IP);
	fa_emit(&a, F_STMT(BPF_RET | BPF_K, 0));
	return a.n <= cap && !a.bad ? a.n : 0;
}
