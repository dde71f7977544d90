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

/* The fanout program gives each client->VIP flow a fixed worker, and the same choice is computed in C
 * (filter_fanout_index), so the main thread knows which worker's table a flow from the peer belongs
 * in. The kernel's own flow hash (PACKET_FANOUT_HASH) uses a random per-boot seed and cannot be
 * reproduced here. Fanout programs see the frame from the IP header on. The hash covers the addresses
 * and, for unfragmented TCP/UDP, the ports; an ICMP error is hashed by the flow it quotes (reversed),
 * so it reaches the worker that owns that flow; fragments hash on addresses only. */
unsigned filter_fanout_index(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport, unsigned n)
{
	uint32_t h = saddr ^ daddr ^ ((uint32_t)sport << 16 | dport);

	h ^= h >> 16;
	h *= 0x45d9f3bu;
	h ^= h >> 16;
	return n ? h % n : 0;
}

/* A tiny forward-only assembler: jumps name a label, labels are placed later, every jump is patched. */
enum { L_PORTS0, L_L4, L_ICMP, L_ERR, L_HASH, L_NOT_IP, L_N };

struct filter_asm {
	struct sock_filter *out;
	size_t n, cap;
	struct { size_t at; int label; char field; } fix[16];
	size_t n_fix;
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
	if (a->n_fix < sizeof(a->fix) / sizeof(a->fix[0])) {
		a->fix[a->n_fix].at = at;
		a->fix[a->n_fix].label = label;
		a->fix[a->n_fix].field = field;
		a->n_fix++;
	}
}

static void fa_label(struct filter_asm *a, int label)
{
	for (size_t i = 0; i < a->n_fix; i++) {
		size_t at = a->fix[i].at;
		if (a->fix[i].label != label || at >= a->cap)
			continue;
		size_t off = a->n - at - 1;
		if (a->fix[i].field == 't')
			a->out[at].jt = (unsigned char)off;
		else if (a->fix[i].field == 'f')
			a->out[at].jf = (unsigned char)off;
		else
			a->out[at].k = (unsigned)off;
	}
}

size_t filter_fanout_build(unsigned n_workers, struct sock_filter *out, size_t cap)
{
	struct filter_asm a = { .out = out, .cap = cap };
	size_t j;

	if (n_workers == 0)
		return 0;
	fa_emit(&a, F_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_PROTOCOL));
	j = fa_emit(&a, F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 0));
	fa_jump(&a, j, 'f', L_NOT_IP);
	/* M[0] = saddr ^ daddr */
	fa_emit(&a, F_STMT(BPF_LD | BPF_W | BPF_ABS, 12));
	fa_emit(&a, F_STMT(BPF_MISC | BPF_TAX, 0));
	fa_emit(&a, F_STMT(BPF_LD | BPF_W | BPF_ABS, 16));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_XOR | BPF_X, 0));
	fa_emit(&a, F_STMT(BPF_ST, 0));
	/* fragments: addresses only */
	fa_emit(&a, F_STMT(BPF_LD | BPF_H | BPF_ABS, 6));
	j = fa_emit(&a, F_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, 0, 0));
	fa_jump(&a, j, 't', L_PORTS0);
	fa_emit(&a, F_STMT(BPF_LD | BPF_B | BPF_ABS, 9));
	j = fa_emit(&a, F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 0));
	fa_jump(&a, j, 't', L_L4);
	j = fa_emit(&a, F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 0, 0));
	fa_jump(&a, j, 't', L_L4);
	j = fa_emit(&a, F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 0));
	fa_jump(&a, j, 't', L_ICMP);
	fa_jump(&a, j, 'f', L_PORTS0);
	/* TCP/UDP: M[1] = sport << 16 | dport */
	fa_label(&a, L_L4);
	fa_emit(&a, F_STMT(BPF_LDX | BPF_B | BPF_MSH, 0));
	fa_emit(&a, F_STMT(BPF_LD | BPF_H | BPF_IND, 0));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_LSH | BPF_K, 16));
	fa_emit(&a, F_STMT(BPF_ST, 1));
	fa_emit(&a, F_STMT(BPF_LD | BPF_H | BPF_IND, 2));
	fa_emit(&a, F_STMT(BPF_LDX | BPF_MEM, 1));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_OR | BPF_X, 0));
	fa_emit(&a, F_STMT(BPF_ST, 1));
	j = fa_emit(&a, F_STMT(BPF_JMP | BPF_JA, 0));
	fa_jump(&a, j, 'a', L_HASH);
	/* ICMP: errors are hashed by the flow they quote, reversed; other ICMP has no ports */
	fa_label(&a, L_ICMP);
	fa_emit(&a, F_STMT(BPF_LDX | BPF_B | BPF_MSH, 0));
	fa_emit(&a, F_STMT(BPF_LD | BPF_B | BPF_IND, 0));
	j = fa_emit(&a, F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 3, 0, 0));
	fa_jump(&a, j, 't', L_ERR);
	j = fa_emit(&a, F_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 11, 0, 0));
	fa_jump(&a, j, 't', L_ERR);
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
	fa_emit(&a, F_STMT(BPF_LD | BPF_H | BPF_IND, 10));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_LSH | BPF_K, 16));
	fa_emit(&a, F_STMT(BPF_ST, 1));
	fa_emit(&a, F_STMT(BPF_LD | BPF_H | BPF_IND, 8));
	fa_emit(&a, F_STMT(BPF_LDX | BPF_MEM, 1));
	fa_emit(&a, F_STMT(BPF_ALU | BPF_OR | BPF_X, 0));
	fa_emit(&a, F_STMT(BPF_ST, 1));
	j = fa_emit(&a, F_STMT(BPF_JMP | BPF_JA, 0));
	fa_jump(&a, j, 'a', L_HASH);
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
	return a.n <= cap ? a.n : 0;
}
