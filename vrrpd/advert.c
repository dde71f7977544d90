/* Heartbeats: protobuf Heartbeat sealed in an authenticated envelope (common/auth.h), sent by UDP to
 * the peer's configured address, IPv4 or IPv6 as the nodes are (and, IPv4 only, to a multicast group if
 * configured). Every rejected datagram is counted by reason, logged rate-limited, and changes nothing. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "heartbeat.h"
#include "log.h"
#include "vrrpd.h"

#define ADVERT_BUF 4096

static void advert_reject(struct vrrpd *v, enum auth_result r, const char *from)
{
	switch (r) {
	case AUTH_MALFORMED:
	case AUTH_TOO_BIG:
	case AUTH_WRONG_KIND:
		v->rej.malformed++;
		break;
	case AUTH_UNKNOWN_KEY: v->rej.unknown_key++; break;
	case AUTH_BAD_MAC: v->rej.bad_mac++; break;
	case AUTH_REPLAY: v->rej.replay++; break;
	case AUTH_STALE_EPOCH: v->rej.stale_epoch++; break;
	case AUTH_UNKNOWN_NODE: v->rej.unknown_node++; break;
	default: break;
	}
	/* A peer that restarted is not trusted until it echoes our challenge: normal, not alarming. */
	if (r == AUTH_STALE_EPOCH)
		log_rl(LOG_LVL_DEBUG, "heartbeat from %s: %s", from, auth_result_str(r));
	else
		log_rl(LOG_LVL_WARN, "heartbeat from %s rejected: %s", from, auth_result_str(r));
}

/* Multicast heartbeats are IPv4 only (config refuses a group for IPv6 nodes). */
static int advert_multicast(const struct vrrpd *v)
{
	return v->cfg->multicast.s_addr && ipaddr_is_v4(&v->self.addr);
}

/* Takes in an authentic heartbeat; returns what the state machine decided (0 for a backup's heartbeat). */
static unsigned advert_accept(struct vrrpd *v, const Dsrlb__Heartbeat *hb, const char *from)
{
	struct vrrpd_peer *p = &v->peer_info;
	struct vrrp_advert a;
	struct ipaddr sender, vips[CFG_MAX_SERVICES];
	size_t n_vips;
	const char *why;
	uint64_t now = clock_ms();

	if (heartbeat_get_addrs(hb, &sender, vips, CFG_MAX_SERVICES, &n_vips, &why) < 0) {
		v->rej.malformed++;
		log_rl(LOG_LVL_WARN, "heartbeat from %s: authentic but malformed: %s", from, why);
		return 0;
	}
	if (strcmp(hb->node, v->peer.name) != 0 || !ipaddr_eq(&sender, &v->peer.addr)) {
		v->rej.unknown_node++;
		log_rl(LOG_LVL_WARN, "heartbeat names node %s: not our peer %s", hb->node, v->peer.name);
		return 0;
	}
	v->adverts_received++;
	p->heard = 1;
	p->last_heard_ms = now;
	p->priority = (uint8_t)(hb->priority > 255 ? 0 : hb->priority);
	p->state = hb->state;
	p->advert_ms = hb->advert_interval_ms;
	int match = hb->config_digest.len == CFG_DIGEST_LEN &&
		    memcmp(hb->config_digest.data, v->cfg->digest, CFG_DIGEST_LEN) == 0;
	if (!match && p->digest_match)
		log_warn("peer %s runs a different config than ours (digest mismatch)", v->peer.name);
	p->digest_match = match;
	p->lbd_healthy = hb->lbd_healthy;
	p->stopping = hb->stopping;
	p->flows = hb->flow_count;
	p->n_vips = n_vips;
	memcpy(p->vips, vips, n_vips * sizeof(vips[0]));
	snprintf(p->sync_state, sizeof(p->sync_state), "%s", hb->sync_state);

	/* Both nodes send heartbeats every interval (the envelope's freshness proof needs both
	 * directions), but only a master's advert or a step-down (priority 0) is an election event;
	 * a backup's heartbeat only updates what we know of the peer. */
	if (hb->state != DSRLB__NODE_STATE__STATE_MASTER && p->priority != 0)
		return 0;
	memset(&a, 0, sizeof(a));
	a.priority = p->priority;
	a.addr = v->peer.addr;
	a.advert_ms = hb->advert_interval_ms;
	a.master = hb->state == DSRLB__NODE_STATE__STATE_MASTER;
	return vrrp_fsm_advert(&v->fsm, &a, now);
}

/* One datagram from the peer's address: opened, decoded and, if authentic, applied to what we know of
 * the peer and to the state machine, whose decision it returns. Separate from the socket so the fuzz
 * target (tests/fuzz/fuzz_heartbeat.c) reaches every check a datagram goes through. */
static unsigned advert_input(struct vrrpd *v, const uint8_t *buf, size_t n, const char *from)
{
	uint8_t payload[ADVERT_BUF];
	size_t plen;
	enum auth_result r;
	unsigned act;

	if (n > ADVERT_BUF) {
		v->rej.malformed++;
		log_rl(LOG_LVL_WARN, "heartbeat from %s: oversized datagram", from);
		return 0;
	}
	r = auth_open(v->hb, buf, n, payload, sizeof(payload), &plen);
	if (r != AUTH_OK) {
		advert_reject(v, r, from);
		/* A peer whose new epoch we cannot trust yet needs our challenge to prove itself: answer
		 * at once (at most twice an interval) rather than at the next tick, so a restarted node
		 * and its peer trust each other within a round trip, well inside master-down. */
		uint64_t now = clock_ms();
		if (r == AUTH_STALE_EPOCH && now - v->prompt_sent_ms >= v->cfg->advert_interval_ms / 2) {
			v->prompt_sent_ms = now;
			advert_send(v);
		}
		return 0;
	}
	Dsrlb__Heartbeat *hb = dsrlb__heartbeat__unpack(NULL, plen, payload);
	if (!hb) {
		v->rej.malformed++;
		log_rl(LOG_LVL_WARN, "heartbeat from %s: authentic but does not parse", from);
		return 0;
	}
	act = advert_accept(v, hb, from);
	dsrlb__heartbeat__free_unpacked(hb, NULL);
	return act;
}

/* The socket's drop count (SO_RXQ_OVFL) rides along with every datagram: it covers what the filter
 * dropped and what did not fit in the receive buffer. */
static void advert_note_drops(struct vrrpd *v, struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(4)) {
			uint32_t drops;
			memcpy(&drops, CMSG_DATA(c), sizeof(drops));
			v->rej.kernel_dropped = drops;
		}
	}
}

int advert_receive(struct vrrpd *v, unsigned *act)
{
	uint8_t buf[ADVERT_BUF + 1];
	union { struct cmsghdr align; uint8_t b[CMSG_SPACE(sizeof(uint32_t))]; } ctl;
	struct sockaddr_storage from;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
	ssize_t n = recvmsg(v->sock, &mh, MSG_DONTWAIT);
	struct ipaddr src;
	char fromstr[IPADDR_STRLEN];

	*act = 0;
	if (n < 0)
		return -1;
	advert_note_drops(v, &mh);
	if (ipaddr_from_sockaddr((struct sockaddr *)&from, &src, NULL) < 0)
		memset(&src, 0, sizeof(src));
	ipaddr_str(&src, fromstr);
	if (!v->have_peer || !ipaddr_eq(&src, &v->peer.addr)) {
		v->rej.unknown_node++;
		log_rl(LOG_LVL_WARN, "heartbeat from %s: not our peer's address", fromstr);
		return 0;
	}
	*act = advert_input(v, buf, (size_t)n, fromstr);
	return 0;
}

void advert_send(struct vrrpd *v)
{
	Dsrlb__Heartbeat hb = DSRLB__HEARTBEAT__INIT;
	struct heartbeat_buf hbuf;
	struct ipaddr vips[CFG_MAX_SERVICES];
	uint8_t payload[ADVERT_BUF], out[ADVERT_BUF + AUTH_OVERHEAD];
	size_t plen, olen, nv;
	struct vrrp_advert a;
	struct sockaddr_storage to;
	socklen_t tolen;
	char tostr[IPADDR_STRLEN];

	if (!v->have_peer && !advert_multicast(v))
		return;
	vrrp_fsm_advert_fill(&v->fsm, &a);
	nv = cfg_vips(v->cfg, vips, CFG_MAX_SERVICES);
	hb.node = v->node;
	hb.priority = a.priority;
	hb.state = (Dsrlb__NodeState)vrrp_fsm_state(&v->fsm);
	hb.advert_interval_ms = v->cfg->advert_interval_ms;
	heartbeat_put_addrs(&hb, &hbuf, &v->self.addr, vips, nv);
	hb.config_digest.data = v->cfg->digest;
	hb.config_digest.len = CFG_DIGEST_LEN;
	hb.lbd_healthy = v->lbd_healthy;
	hb.flow_count = v->lbd_flows;
	hb.sync_state = v->sync_state;
	hb.stopping = v->stopping || v->lbd_stopping;
	plen = dsrlb__heartbeat__get_packed_size(&hb);
	if (plen > sizeof(payload))
		return;
	dsrlb__heartbeat__pack(&hb, payload);
	if (auth_seal(v->hb, payload, plen, out, sizeof(out), &olen) < 0) {
		log_rl(LOG_LVL_ERR, "%s: cannot seal heartbeat: %s", __func__, strerror(errno));
		return;
	}
	if (v->have_peer && !advert_multicast(v)) {
		tolen = ipaddr_sockaddr(&v->peer.addr, v->cfg->heartbeat_port, &to);
		if (sendto(v->sock, out, olen, MSG_DONTWAIT, (struct sockaddr *)&to, tolen) < 0)
			log_rl(LOG_LVL_WARN, "%s: sendto %s: %s", __func__, ipaddr_str(&v->peer.addr, tostr),
			       strerror(errno));
	}
	if (advert_multicast(v)) {
		struct ipaddr group = ipaddr_from_v4(v->cfg->multicast.s_addr);
		tolen = ipaddr_sockaddr(&group, v->cfg->heartbeat_port, &to);
		sendto(v->sock, out, olen, MSG_DONTWAIT, (struct sockaddr *)&to, tolen);
	}
	v->adverts_sent++;
}

/* A classic BPF socket filter: the kernel drops a datagram whose IP source is not the peer's before it
 * is queued, so a flood from other addresses cannot push the peer's heartbeats out of the receive
 * buffer. (A flood that spoofs the peer's address can: see docs/security.md, heartbeat network.) A UDP
 * socket's filter sees the datagram from the UDP header; SKF_NET_OFF reaches back to the IP header,
 * where the source is the word at byte 12 (IPv4) or the 16 bytes from byte 8 of the fixed header
 * (IPv6; extension headers come after it), compared a word at a time. Loads are in host order. */
size_t advert_filter_prog(const struct ipaddr *peer, struct sock_filter *prog)
{
	int v4 = ipaddr_is_v4(peer);
	const uint32_t *w = v4 ? &peer->w[3] : peer->w;
	uint32_t nw = v4 ? 1 : 4, off = v4 ? 12 : 8;
	size_t n = 0;

	for (uint32_t i = 0; i < nw; i++) {
		prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + off + 4 * i);
		/* A mismatch jumps past the words left and the accept, to the drop. */
		prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohl(w[i]), 0,
							 (uint8_t)(2 * (nw - 1 - i) + 1));
	}
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0xffff);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0);
	return n;
}

void advert_filter(struct vrrpd *v)
{
	struct sock_filter prog[ADVERT_FILTER_MAX];
	struct sock_fprog fp = { .filter = prog };

	if (!v->have_peer)
		return;
	fp.len = (unsigned short)advert_filter_prog(&v->peer.addr, prog);
	if (setsockopt(v->sock, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) < 0)
		log_warn("%s: SO_ATTACH_FILTER: %s: datagrams from any address reach vrrpd and are checked there",
			 __func__, strerror(errno));
}

/* An IPv6 address is tentative, and cannot be bound, while duplicate address detection runs (about a
 * second after it was added, RFC 4862 section 5.4): a vrrpd started with the network waits that out,
 * for ADVERT_BIND_WAIT_MS at most, rather than failing. Start-up only. Any other failure is at once. */
#define ADVERT_BIND_WAIT_MS 3000
static int advert_bind(struct vrrpd *v, const struct sockaddr *sa, socklen_t len)
{
	const struct timespec step = { 0, 100 * 1000 * 1000 };

	for (unsigned waited = 0;; waited += 100) {
		if (bind(v->sock, sa, len) == 0)
			return 0;
		if (errno != EADDRNOTAVAIL || sa->sa_family != AF_INET6 || waited >= ADVERT_BIND_WAIT_MS)
			return -1;
		if (waited == 0)
			log_info("%s: address not available yet (duplicate address detection?): waiting up to %u ms",
				 __func__, ADVERT_BIND_WAIT_MS);
		nanosleep(&step, NULL);
	}
}

int advert_open(struct vrrpd *v)
{
	struct sockaddr_storage ss;
	struct ipaddr any = ipaddr_from_v4(INADDR_ANY);
	socklen_t sslen;
	int one = 1, tos = 0xc0;   /* DSCP CS6, network control */
	int v6 = !ipaddr_is_v4(&v->self.addr);
	char addr[IPADDR_STRLEN];

	v->sock = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (v->sock < 0) {
		log_err("%s: socket: %s", __func__, strerror(errno));
		return -1;
	}
	setsockopt(v->sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (v6) {
		setsockopt(v->sock, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(v->sock, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
	} else {
		setsockopt(v->sock, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
	}
	/* Bound to the wildcard so multicast heartbeats arrive too; the source is checked per datagram. */
	sslen = ipaddr_sockaddr(advert_multicast(v) ? &any : &v->self.addr, v->cfg->heartbeat_port, &ss);
	if (advert_bind(v, (struct sockaddr *)&ss, sslen) < 0) {
		log_err("%s: bind %s port %u: %s", __func__, advert_multicast(v) ? "0.0.0.0" : ipaddr_str(&v->self.addr, addr),
			v->cfg->heartbeat_port, strerror(errno));
		close(v->sock);
		return -1;
	}
	if (advert_multicast(v)) {
		struct ip_mreqn mr = { .imr_multiaddr = v->cfg->multicast, .imr_address.s_addr = ipaddr_v4(&v->self.addr) };
		if (setsockopt(v->sock, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0)
			log_warn("%s: joining %s: %s", __func__, inet_ntoa(v->cfg->multicast), strerror(errno));
		setsockopt(v->sock, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr));
		int zero = 0;
		setsockopt(v->sock, IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof(zero));
	}
	setsockopt(v->sock, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
	advert_filter(v);
	return 0;
}

void advert_close(struct vrrpd *v)
{
	ev_io_stop(v->loop, &v->sock_io);
	close(v->sock);
}
