/* The privileged helper: the stack-side drop rule for VIP frames, through libnftables (the library
 * behind `nft`), and in mode = ecmp the VIP routes that announce this node to the local routing daemon,
 * through rtnetlink (libmnl). Packet sockets receive frames before the netdev ingress hook, so lbd still
 * sees every frame it drops here. Both do IPv4 and IPv6: the rule drops frames to our MAC whose IPv4 or
 * IPv6 destination is a VIP (`ip daddr { ... }`, `ip6 daddr { ... }`), and a route is VIP/32 or VIP/128.
 *
 * Changing nftables or routes needs CAP_NET_ADMIN, which lets a process reconfigure the whole host's
 * network. lbd itself gives it up: a helper process forked at start-up, before any packet socket exists,
 * keeps it alone and does a few things, on a socketpair: replace this one table for a list of VIPs (or
 * remove it), and add or delete one route `VIP/32 (or /128) dev announce_device table announce_table
 * proto KDROP_RTPROT`. It reads nothing from the network; each request is a fixed-size record it checks in full,
 * and the interface, its MAC, the routing table and the device are its own (fixed at start-up and read
 * from the kernel), not lbd's word. A route is added only for a VIP of the config file (read by the
 * helper itself), since the routing daemon exports it to the routers. So a bug in lbd's packet path that
 * hands an attacker lbd gets no CAP_NET_ADMIN, only this rule and the announcement of its own VIPs. */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <linux/capability.h>
#include <time.h>
#include <unistd.h>

#include "ipaddr.h"
#include "kdrop.h"
#include "log.h"
#include "privs.h"

#define KDROP_TABLE      "dsrlb"
#define KDROP_MAX_VIPS   CFG_MAX_SERVICES
#define KDROP_TIMEOUT_MS 5000

enum kdrop_op { KDROP_OP_INSTALL = 1, KDROP_OP_REMOVE = 2, KDROP_OP_ANNOUNCE = 3, KDROP_OP_WITHDRAW = 4 };

struct kdrop_req {
	uint32_t seq;
	uint32_t op;
	uint32_t n;
	struct ipaddr vips[KDROP_MAX_VIPS];
};

struct kdrop_resp {
	uint32_t seq;
	int32_t rc;
};

struct kdrop {
	int fd;
	pid_t pid;
	uint32_t seq;
};

/* What the helper knows of its own, fixed when it is forked: never taken from a request. */
struct kdrop_helper {
	char ifname[IFNAMSIZ];
	char cfg_path[PATH_MAX];
	int ecmp;                       /* routes may be announced at all */
	uint32_t table;
	char device[IFNAMSIZ];
	struct ipaddr vips[KDROP_MAX_VIPS];     /* the config's VIPs, as last read by the helper */
	size_t n_vips;
};

static int kdrop_run(const char *cmd)
{
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
	int rc;

	if (!nft) {
		log_err("%s: nft_ctx_new failed", __func__);
		return -1;
	}
	nft_ctx_buffer_error(nft);
	rc = nft_run_cmd_from_buffer(nft, cmd);
	if (rc != 0) {
		const char *e = nft_ctx_get_error_buffer(nft);
		log_warn("nftables: %s", e && e[0] ? e : "command failed");
	}
	nft_ctx_free(nft);
	return rc ? -1 : 0;
}

static int kdrop_helper_mac(const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	rc = ioctl(fd, SIOCGIFHWADDR, &ifr);
	close(fd);
	if (rc < 0) {
		log_err("kdrop helper: %s: SIOCGIFHWADDR: %s", ifname, strerror(errno));
		return -1;
	}
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return 0;
}

/* A VIP is a host address of either family (config.c's rule, ipaddr_unusable): not unspecified,
 * loopback, multicast, link-local, reserved or broadcast. */
static int kdrop_req_valid(const struct kdrop_req *q, ssize_t len)
{
	if (len < (ssize_t)offsetof(struct kdrop_req, vips) || q->op < KDROP_OP_INSTALL || q->op > KDROP_OP_WITHDRAW)
		return 0;
	if (q->n > KDROP_MAX_VIPS || (size_t)len != offsetof(struct kdrop_req, vips) + q->n * sizeof(q->vips[0]))
		return 0;
	if ((q->op == KDROP_OP_ANNOUNCE || q->op == KDROP_OP_WITHDRAW) && q->n != 1)
		return 0;
	for (uint32_t i = 0; i < q->n; i++)
		if (ipaddr_unusable(&q->vips[i]))
			return 0;
	return 1;
}

static int kdrop_helper_has_vip(const struct kdrop_helper *h, const struct ipaddr *vip)
{
	for (size_t i = 0; i < h->n_vips; i++)
		if (ipaddr_eq(&h->vips[i], vip))
			return 1;
	return 0;
}

/* Only a VIP of the config may be announced: the helper reads the file again (as the daemons' user,
 * like lbd's reload) when a VIP it does not know is asked for, so a reload that adds one still works. */
static int kdrop_helper_vip_allowed(struct kdrop_helper *h, const struct ipaddr *vip)
{
	char err[512];
	struct cfg *cfg;

	if (kdrop_helper_has_vip(h, vip))
		return 1;
	cfg = cfg_load(h->cfg_path, err, sizeof(err));
	if (!cfg) {
		log_err("kdrop helper: %s", err);
		return 0;
	}
	h->n_vips = cfg_vips(cfg, h->vips, KDROP_MAX_VIPS);
	cfg_free(cfg);
	return kdrop_helper_has_vip(h, vip);
}

/* One rtnetlink request (RTM_NEWROUTE or RTM_DELROUTE) for VIP/32 or VIP/128 dev device table table, and
 * its ack. An IPv6 route through the device needs IPv6 on it (not disable_ipv6): the kernel refuses it
 * otherwise, and the error is logged here. */
static int kdrop_helper_route(const struct kdrop_helper *h, uint16_t type, const struct ipaddr *vip)
{
	char addr[IPADDR_STRLEN];
	int v4 = ipaddr_is_v4(vip);
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;
	unsigned ifindex = if_nametoindex(h->device);
	uint32_t seq = (uint32_t)time(NULL), portid;
	int rc = -1, e = 0;
	ssize_t n;

	if (!ifindex) {
		if (type == RTM_DELROUTE)
			return 0;       /* the device is gone, and every route through it with it */
		log_err("kdrop helper: announce device %s: %s", h->device, strerror(errno));
		return -1;
	}
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (type == RTM_NEWROUTE ? NLM_F_CREATE | NLM_F_REPLACE : 0);
	nlh->nlmsg_seq = seq;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = v4 ? AF_INET : AF_INET6;
	rtm->rtm_dst_len = v4 ? 32 : 128;
	rtm->rtm_table = h->table < 256 ? (uint8_t)h->table : RT_TABLE_UNSPEC;
	rtm->rtm_protocol = KDROP_RTPROT;
	rtm->rtm_scope = v4 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;        /* what `ip route` gives each */
	rtm->rtm_type = RTN_UNICAST;
	if (v4)
		mnl_attr_put_u32(nlh, RTA_DST, ipaddr_v4(vip));
	else
		mnl_attr_put(nlh, RTA_DST, sizeof(vip->b), vip->b);
	mnl_attr_put_u32(nlh, RTA_TABLE, h->table);
	mnl_attr_put_u32(nlh, RTA_OIF, ifindex);
	nl = mnl_socket_open(NETLINK_ROUTE);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		log_err("kdrop helper: netlink socket: %s", strerror(errno));
		goto out;
	}
	portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		log_err("kdrop helper: netlink send: %s", strerror(errno));
		goto out;
	}
	n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (n < 0 || (rc = mnl_cb_run(buf, (size_t)n, seq, portid, NULL, NULL)) < 0)
		e = errno;
	rc = rc < 0 ? -1 : 0;
	if (rc < 0 && type == RTM_DELROUTE && (e == ESRCH || e == ENODEV))
		rc = 0;         /* not there: withdrawn already */
	else if (rc < 0)
		log_err("kdrop helper: %s route %s/%d dev %s table %u: %s", type == RTM_NEWROUTE ? "adding" : "deleting",
			ipaddr_str(vip, addr), v4 ? 32 : 128, h->device, h->table, strerror(e));
out:
	if (nl)
		mnl_socket_close(nl);
	return rc;
}

/* The VIPs of one family as an nftables set's elements ("a, b, c") into out; how many. */
static size_t kdrop_helper_set(const struct kdrop_req *q, int v4, char *out, size_t len)
{
	size_t off = 0, n = 0;

	out[0] = 0;
	for (uint32_t i = 0; i < q->n; i++) {
		char a[IPADDR_STRLEN];
		if (ipaddr_is_v4(&q->vips[i]) != v4)
			continue;
		off += (size_t)snprintf(out + off, len - off, "%s%s", n++ ? ", " : "", ipaddr_str(&q->vips[i], a));
	}
	return n;
}

static int kdrop_helper_apply(struct kdrop_helper *h, const struct kdrop_req *q)
{
	char set4[KDROP_MAX_VIPS * (INET_ADDRSTRLEN + 2)], set6[KDROP_MAX_VIPS * (IPADDR_STRLEN + 2)];
	char mac_s[18], rules[sizeof(set4) + sizeof(set6) + 256], cmd[sizeof(rules) + 512];
	const char *ifname = h->ifname;
	char addr[IPADDR_STRLEN];
	uint8_t mac[6];
	size_t off = 0;

	if (q->op == KDROP_OP_ANNOUNCE || q->op == KDROP_OP_WITHDRAW) {
		if (!h->ecmp) {
			log_err("kdrop helper: refused a route request: not mode = ecmp");
			return -1;
		}
		if (q->op == KDROP_OP_WITHDRAW)
			return kdrop_helper_route(h, RTM_DELROUTE, &q->vips[0]);
		if (!kdrop_helper_vip_allowed(h, &q->vips[0])) {
			log_err("kdrop helper: refused to announce %s: no VIP of %s", ipaddr_str(&q->vips[0], addr),
				h->cfg_path);
			return -1;
		}
		return kdrop_helper_route(h, RTM_NEWROUTE, &q->vips[0]);
	}
	if (q->op == KDROP_OP_REMOVE || q->n == 0)
		return kdrop_run("add table netdev " KDROP_TABLE "\ndelete table netdev " KDROP_TABLE "\n");
	if (kdrop_helper_mac(ifname, mac) < 0)
		return -1;
	snprintf(mac_s, sizeof(mac_s), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	/* One rule per family that has VIPs: nftables refuses an empty set. */
	rules[0] = 0;
	if (kdrop_helper_set(q, 1, set4, sizeof(set4)))
		off += (size_t)snprintf(rules + off, sizeof(rules) - off,
					"    ether daddr %s ip daddr { %s } counter drop\n", mac_s, set4);
	if (kdrop_helper_set(q, 0, set6, sizeof(set6)))
		snprintf(rules + off, sizeof(rules) - off, "    ether daddr %s ip6 daddr { %s } counter drop\n", mac_s,
			 set6);
	/* One transaction: make sure the table exists, delete it, create it anew. */
	snprintf(cmd, sizeof(cmd),
		 "add table netdev " KDROP_TABLE "\n"
		 "delete table netdev " KDROP_TABLE "\n"
		 "table netdev " KDROP_TABLE " {\n"
		 "  chain vip_frames {\n"
		 "    type filter hook ingress device \"%s\" priority -500; policy accept;\n"
		 "%s"
		 "  }\n"
		 "}\n",
		 ifname, rules);
	return kdrop_run(cmd);
}

/* The helper's whole life: requests in, one answer each, until lbd closes its end (or dies). Signals
 * meant for lbd (Ctrl-C in a terminal, systemd's SIGTERM to the unit) leave it alone, so lbd can still
 * remove the rule on its way out. */
static void __attribute__((noreturn)) kdrop_helper_main(int fd, struct kdrop_helper *h, uid_t uid, gid_t gid)
{
	struct kdrop_req q;
	struct kdrop_resp r;
	ssize_t n;

	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_NAME, "lbd-nft", 0, 0, 0);
	if (privs_drop(uid, gid, 1ull << CAP_NET_ADMIN) < 0)
		_exit(1);
	for (;;) {
		n = recv(fd, &q, sizeof(q), 0);
		if (n == 0)
			_exit(0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_err("kdrop helper: recv: %s", strerror(errno));
			_exit(1);
		}
		r.seq = n >= (ssize_t)sizeof(q.seq) ? q.seq : 0;
		if (!kdrop_req_valid(&q, n)) {
			log_err("kdrop helper: refused a malformed request (%zd bytes)", n);
			r.rc = -1;
		} else {
			r.rc = kdrop_helper_apply(h, &q);
		}
		send(fd, &r, sizeof(r), MSG_NOSIGNAL);
	}
}

struct kdrop *kdrop_create(const struct cfg *cfg, uid_t uid, gid_t gid)
{
	struct kdrop *k = calloc(1, sizeof(*k));
	static struct kdrop_helper h;
	int sv[2];

	if (!k) {
		log_err("%s: out of memory", __func__);
		return NULL;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_err("%s: socketpair: %s", __func__, strerror(errno));
		free(k);
		return NULL;
	}
	k->pid = fork();
	if (k->pid < 0) {
		log_err("%s: fork: %s", __func__, strerror(errno));
		close(sv[0]);
		close(sv[1]);
		free(k);
		return NULL;
	}
	if (k->pid == 0) {
		close(sv[0]);
		/* Nothing else of lbd's: forked before the rings, but be sure. syslog reconnects. */
		closelog();
		if (sv[1] > 3)
			close_range(3, (unsigned)sv[1] - 1, 0);
		close_range((unsigned)sv[1] + 1, ~0u, 0);
		snprintf(h.ifname, sizeof(h.ifname), "%s", cfg->interface);
		snprintf(h.cfg_path, sizeof(h.cfg_path), "%s", cfg->path);
		h.ecmp = cfg->mode == CFG_MODE_ECMP;
		h.table = cfg->announce_table;
		snprintf(h.device, sizeof(h.device), "%s", cfg->announce_device);
		h.n_vips = cfg_vips(cfg, h.vips, KDROP_MAX_VIPS);
		kdrop_helper_main(sv[1], &h, uid, gid);
	}
	close(sv[1]);
	k->fd = sv[0];
	return k;
}

/* One request, one answer, bounded in time. A late answer to an earlier request is skipped by its
 * sequence number. */
static int kdrop_call(struct kdrop *k, uint32_t op, const struct ipaddr *vips, size_t n)
{
	struct kdrop_req q;
	struct kdrop_resp r;
	struct timespec t0, t;
	size_t len;

	if (!k || k->fd < 0) {
		log_err("%s: the nftables helper is not running", __func__);
		return -1;
	}
	if (n > KDROP_MAX_VIPS) {
		log_err("%s: %zu VIPs, at most %d", __func__, n, KDROP_MAX_VIPS);
		return -1;
	}
	memset(&q, 0, sizeof(q));
	q.seq = ++k->seq;
	q.op = op;
	q.n = (uint32_t)n;
	if (n)
		memcpy(q.vips, vips, n * sizeof(q.vips[0]));
	len = offsetof(struct kdrop_req, vips) + n * sizeof(q.vips[0]);
	if (send(k->fd, &q, len, MSG_NOSIGNAL) != (ssize_t)len) {
		log_err("%s: the nftables helper is gone: %s", __func__, strerror(errno));
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pfd = { .fd = k->fd, .events = POLLIN };
		long left;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = KDROP_TIMEOUT_MS - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			log_err("%s: no answer from the nftables helper in %d ms", __func__, KDROP_TIMEOUT_MS);
			return -1;
		}
		ssize_t got = recv(k->fd, &r, sizeof(r), MSG_DONTWAIT);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0) {
			log_err("%s: the nftables helper is gone%s%s", __func__, got ? ": " : "", got ? strerror(errno) : "");
			return -1;
		}
		if (got == (ssize_t)sizeof(r) && r.seq == q.seq)
			return r.rc == 0 ? 0 : -1;
	}
}

int kdrop_install(struct kdrop *k, const struct ipaddr *vips, size_t n)
{
	return kdrop_call(k, KDROP_OP_INSTALL, vips, n);
}

void kdrop_remove(struct kdrop *k)
{
	kdrop_call(k, KDROP_OP_REMOVE, NULL, 0);
}

int kdrop_route(struct kdrop *k, const struct ipaddr *vip, int announce)
{
	return kdrop_call(k, announce ? KDROP_OP_ANNOUNCE : KDROP_OP_WITHDRAW, vip, 1);
}

void kdrop_destroy(struct kdrop *k)
{
	if (!k)
		return;
	/* EOF ends the helper; it holds nothing that needs more. */
	close(k->fd);
	while (waitpid(k->pid, NULL, 0) < 0 && errno == EINTR)
		;
	free(k);
}
