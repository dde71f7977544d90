/* lbctl check-backend: probes one backend from the balancer's LAN interface the way lbd will use it.
 * 1. ARP for the backend's address (its MAC); 2. ARP for the VIP, which the backend must not answer;
 * 3. a TCP SYN (or a UDP datagram) for VIP:port sent to the backend's MAC, as lbd forwards it;
 * 4. a TCP connect to the backend's own address and the service port, as health checks do.
 * An IPv6 backend gets the same checks with Neighbour Solicitations instead of ARP (RFC 4861): Linux
 * answers none for an address on lo, so a VIP/128 on lo is all a backend needs (no arp_ignore). The
 * backend and its VIPs are of one family, as in the config.
 * Probes are raw frames on AF_PACKET sockets (CAP_NET_RAW); answers are matched in user space with the
 * forwarding path's parser, and every wait has a deadline, so the command cannot hang. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ifaddrs.h>

#include "checkbackend.h"
#include "clock.h"
#include "config.h"
#include "ipaddr.h"
#include "lbd/pkt.h"

#define CB_DEFAULT_CONFIG   "/etc/dsrlb/dsrlb.conf"
#define CB_ARP_WAIT_MS      1000    /* the backend's answer to our ARP request */
#define CB_VIP_ARP_WAIT_MS  500     /* every answer to our ARP request for the VIP */
#define CB_PROBE_WAIT_MS    1000    /* SYN-ACK or RST to our SYN, answer to our datagram */
#define CB_CONNECT_WAIT_MS  1000    /* TCP connect to the backend's real address */
#define CB_MAX_OWNERS       8       /* distinct MACs remembered answering ARP for the VIP */
#define CB_FRAME_MAX        2048
#define CB_ETH_MIN          60      /* shortest Ethernet frame without FCS */
#define CB_TH_SYN           0x02
#define CB_TH_RST           0x04
#define CB_TH_ACK           0x10
#define CB_UDP_PAYLOAD      "dsrlb check-backend probe\n"

enum cb_level { CB_LEVEL_OK, CB_LEVEL_FAIL, CB_LEVEL_WARN, CB_LEVEL_SKIP };

/* One service the backend is checked for. */
struct cb_target {
	char name[CFG_NAME_MAX];        /* "" when it comes from the flags */
	struct ipaddr vip;              /* of the backend's family */
	uint16_t port;                  /* host order */
	uint8_t proto;                  /* IPPROTO_TCP or IPPROTO_UDP */
	int health_checked;             /* lbd connects to the backend's real address */
};

struct cb {
	struct ipaddr backend;
	int v6;                         /* the backend is IPv6: neighbour discovery instead of ARP */
	char ifname[IFNAMSIZ];
	int ifindex;
	uint8_t mac[6];                 /* our interface's */
	struct ipaddr src;              /* our interface's address of the backend's family: the probes' source */
	int arp_fd;                     /* AF_PACKET bound to ARP frames of ifindex (IPv6: the ip_fd) */
	int ip_fd;                      /* AF_PACKET bound to IPv4 (IPv6) frames of ifindex */
	uint8_t be_mac[6];
	int be_mac_known;
	struct cb_target targets[CFG_MAX_SERVICES];
	size_t n_targets;
	unsigned fails, warns;
};

/* The command line as given. */
struct cb_opts {
	const char *address, *vip, *port, *ifname, *cfg_path;
	int udp;
};

/* What came back for a probe sent to VIP:port through the backend's MAC. */
struct cb_answer {
	enum { CB_ANS_NONE, CB_ANS_OPEN, CB_ANS_CLOSED, CB_ANS_ICMP } kind;
	uint8_t mac[6];                 /* Ethernet source of the answer */
	struct ipaddr from;             /* IP source of the answer */
	uint8_t icmp_type, icmp_code;
};

static void cb_usage(FILE *out)
{
	fprintf(out,
		"usage: lbctl check-backend ADDRESS [--vip VIP] [--port PORT] [--udp] [--interface IF] [-c FILE]\n"
		"\n"
		"Checks from this balancer that the backend ADDRESS is ready for DSR: it answers ARP, it does not\n"
		"answer ARP for the VIP, it accepts packets for VIP:PORT sent to its MAC, and its own address\n"
		"answers on PORT (where health checks connect). Needs CAP_NET_RAW. ADDRESS and VIP are IPv4 or\n"
		"IPv6, both of one family; for IPv6 the checks use Neighbour Solicitations instead of ARP.\n"
		"\n"
		"  -c FILE          config (default " CB_DEFAULT_CONFIG " if present): checks every service\n"
		"                   that lists ADDRESS as a backend; the interface comes from [cluster]\n"
		"  --vip VIP        the VIP to check (overrides the config's)\n"
		"  --port PORT      the service port (overrides the config's)\n"
		"  --udp            the service is UDP (without a config: TCP)\n"
		"  --interface IF   the balancer's LAN interface (overrides the config's)\n"
		"\n"
		"exit status: 0 ready, 1 a check failed, 2 usage, 3 cannot run (permission, interface, config)\n");
}

static const char *cb_mac_str(const uint8_t *m, char *buf, size_t len)
{
	snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return buf;
}

/* The host prefix length a VIP must have on the backend's lo: /32, or /128 for IPv6. */
static unsigned cb_host_len(const struct cb *cb)
{
	return cb->v6 ? 128 : 32;
}

/* How the family finds neighbours, for messages: "ARP" or "NDP". */
static const char *cb_nd_name(const struct cb *cb)
{
	return cb->v6 ? "NDP" : "ARP";
}

static const char *cb_proto_str(uint8_t proto)
{
	return proto == IPPROTO_UDP ? "udp" : "tcp";
}

/* Prints one check's verdict, and for problems what to do about it. */
static void cb_report(struct cb *cb, enum cb_level lvl, const char *fix, const char *fmt, ...)
{
	static const char *const names[] = { "ok", "FAIL", "warn", "skip" };
	va_list ap;

	printf("%-4s  ", names[lvl]);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (fix)
		printf("      fix: %s\n", fix);
	fflush(stdout);
	if (lvl == CB_LEVEL_FAIL)
		cb->fails++;
	else if (lvl == CB_LEVEL_WARN)
		cb->warns++;
}

static uint32_t cb_random(void)
{
	uint32_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (uint32_t)clock_ns() ^ ((uint32_t)getpid() << 16);
	return v;
}

/* ---- command line and config ------------------------------------------------------------------ */

static int cb_parse_args(int argc, char **argv, struct cb_opts *o)
{
	static const struct option opts[] = {
		{ "vip", required_argument, NULL, 'v' },
		{ "port", required_argument, NULL, 'p' },
		{ "interface", required_argument, NULL, 'i' },
		{ "udp", no_argument, NULL, 'u' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0;                     /* glibc: start over, lbctl's own getopt ran before */
	while ((c = getopt_long(argc, argv, "c:hi:p:uv:", opts, NULL)) != -1) {
		switch (c) {
		case 'v': o->vip = optarg; break;
		case 'p': o->port = optarg; break;
		case 'i': o->ifname = optarg; break;
		case 'u': o->udp = 1; break;
		case 'c': o->cfg_path = optarg; break;
		case 'h': cb_usage(stdout); return 1;
		default: cb_usage(stderr); return -1;
		}
	}
	if (optind != argc - 1) {
		cb_usage(stderr);
		return -1;
	}
	o->address = argv[optind];
	return 0;
}

static int cb_parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* Adds a target unless the same VIP, port and protocol is there already. */
static void cb_add_target(struct cb *cb, const struct cb_target *t)
{
	for (size_t i = 0; i < cb->n_targets; i++) {
		const struct cb_target *o = &cb->targets[i];
		if (ipaddr_eq(&o->vip, &t->vip) && o->port == t->port && o->proto == t->proto) {
			cb->targets[i].health_checked |= t->health_checked;
			return;
		}
	}
	if (cb->n_targets < CFG_MAX_SERVICES)
		cb->targets[cb->n_targets++] = *t;
}

/* Every service of cfg that lists the backend, with the flags' overrides applied. */
static void cb_targets_from_config(struct cb *cb, const struct cfg *cfg, const struct cb_target *over)
{
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct cfg_service *s = &cfg->services[i];
		struct cb_target t = { .vip = s->vip, .port = s->port, .proto = s->proto,
				       .health_checked = s->check != CFG_CHECK_NONE };
		size_t j;

		for (j = 0; j < s->n_backends && !ipaddr_eq(&s->backends[j].addr, &cb->backend); j++)
			;
		if (j == s->n_backends)
			continue;
		snprintf(t.name, sizeof(t.name), "%s", s->name);
		if (!ipaddr_is_none(&over->vip))
			t.vip = over->vip;
		if (over->port)
			t.port = over->port;
		if (over->proto)
			t.proto = over->proto;
		cb_add_target(cb, &t);
	}
}

/* Reads the config (the given one, or the default file if it exists): targets and interface.
 * Returns 0, or an exit status after saying what is wrong. */
static int cb_load_config(struct cb *cb, const struct cb_opts *o, const struct cb_target *over)
{
	const char *path = o->cfg_path;
	int flags_suffice = o->vip && o->port && o->ifname;
	char err[512];
	struct cfg *cfg;

	if (!path && access(CB_DEFAULT_CONFIG, R_OK) == 0)
		path = CB_DEFAULT_CONFIG;
	if (!path)
		return 0;
	cfg = cfg_load(path, err, sizeof(err));
	if (!cfg) {
		if (o->cfg_path || !flags_suffice) {
			fprintf(stderr, "lbctl: check-backend: %s\n", err);
			return CHECKBACKEND_CANNOT;
		}
		fprintf(stderr, "lbctl: check-backend: ignoring the default config: %s\n", err);
		return 0;
	}
	cb_targets_from_config(cb, cfg, over);
	if (!o->ifname)
		snprintf(cb->ifname, sizeof(cb->ifname), "%s", cfg->interface);
	if (cb->n_targets == 0 && !o->vip) {
		fprintf(stderr, "lbctl: check-backend: %s is not a backend of any service in %s; "
			"give --vip and --port\n", o->address, path);
		cfg_free(cfg);
		return CHECKBACKEND_USAGE;
	}
	cfg_free(cfg);
	return 0;
}

/* Fills cb from the command line and the config. Returns 0, or an exit status. */
static int cb_setup(struct cb *cb, const struct cb_opts *o)
{
	struct cb_target over = { .proto = o->udp ? IPPROTO_UDP : 0 };
	int rc;

	if (ipaddr_parse(o->address, &cb->backend) < 0) {
		fprintf(stderr, "lbctl: check-backend: '%s' is not an IPv4 or IPv6 address\n", o->address);
		return CHECKBACKEND_USAGE;
	}
	cb->v6 = !ipaddr_is_v4(&cb->backend);
	if (o->vip && ipaddr_parse(o->vip, &over.vip) < 0) {
		fprintf(stderr, "lbctl: check-backend: --vip '%s' is not an IPv4 or IPv6 address\n", o->vip);
		return CHECKBACKEND_USAGE;
	}
	/* DSR keeps the client's packet as it is: a backend only ever sees VIPs of its own family. */
	if (o->vip && ipaddr_is_v4(&over.vip) == cb->v6) {
		fprintf(stderr, "lbctl: check-backend: --vip %s and the backend %s are of different families\n",
			o->vip, o->address);
		return CHECKBACKEND_USAGE;
	}
	if (o->port && cb_parse_port(o->port, &over.port) < 0) {
		fprintf(stderr, "lbctl: check-backend: --port '%s' is not a port in 1..65535\n", o->port);
		return CHECKBACKEND_USAGE;
	}
	if (o->ifname && snprintf(cb->ifname, sizeof(cb->ifname), "%s", o->ifname) >= (int)sizeof(cb->ifname)) {
		fprintf(stderr, "lbctl: check-backend: --interface '%s' is too long\n", o->ifname);
		return CHECKBACKEND_USAGE;
	}
	if ((rc = cb_load_config(cb, o, &over)) != 0)
		return rc;
	if (cb->n_targets == 0) {
		if (!o->vip || !o->port) {
			fprintf(stderr, "lbctl: check-backend: give --vip and --port, or a config (-c) that lists %s\n",
				o->address);
			return CHECKBACKEND_USAGE;
		}
		over.proto = over.proto ? over.proto : IPPROTO_TCP;
		over.health_checked = over.proto == IPPROTO_TCP;
		cb_add_target(cb, &over);
	}
	if (!cb->ifname[0]) {
		fprintf(stderr, "lbctl: check-backend: give --interface, or a config (-c) that names it\n");
		return CHECKBACKEND_USAGE;
	}
	return 0;
}

/* ---- the interface and its sockets ------------------------------------------------------------ */

/* Our IPv6 source on cb->ifname: a global address if it has one, else its link-local one (either
 * reaches a neighbour on the link). 0, or -1 if it has none. */
static int cb_interface_addr6(struct cb *cb)
{
	struct ifaddrs *ifa, *i;
	int found = 0;

	if (getifaddrs(&ifa) < 0)
		return -1;
	for (i = ifa; i; i = i->ifa_next) {
		struct ipaddr a;

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET6 || strcmp(i->ifa_name, cb->ifname) != 0 ||
		    ipaddr_from_sockaddr(i->ifa_addr, &a, NULL) < 0)
			continue;
		if (!found || ipaddr_unusable(&cb->src))
			cb->src = a;
		found = 1;
	}
	freeifaddrs(ifa);
	return found ? 0 : -1;
}

/* Index, MAC and address (of the backend's family) of cb->ifname. */
static int cb_interface(struct cb *cb)
{
	struct ifreq ifr;
	const char *what;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		fprintf(stderr, "lbctl: %s: socket: %s\n", __func__, strerror(errno));
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", cb->ifname);
	what = "no such interface";
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0)
		goto fail;
	cb->ifindex = ifr.ifr_ifindex;
	what = "cannot read its MAC address";
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		goto fail;
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
		fprintf(stderr, "lbctl: check-backend: %s is not an Ethernet interface\n", cb->ifname);
		close(fd);
		return -1;
	}
	memcpy(cb->mac, ifr.ifr_hwaddr.sa_data, 6);
	if (cb->v6) {
		close(fd);
		if (cb_interface_addr6(cb) < 0) {
			fprintf(stderr, "lbctl: check-backend: interface %s has no IPv6 address (a Neighbour "
				"Solicitation needs one as the source)\n", cb->ifname);
			return -1;
		}
		return 0;
	}
	what = "it has no IPv4 address (ARP needs one as the sender)";
	if (ioctl(fd, SIOCGIFADDR, &ifr) < 0)
		goto fail;
	cb->src = ipaddr_from_v4(((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr);
	close(fd);
	return 0;
fail:
	fprintf(stderr, "lbctl: check-backend: interface %s: %s (%s)\n", cb->ifname, what, strerror(errno));
	close(fd);
	return -1;
}

/* An AF_PACKET socket that receives the frames of one ethertype on our interface. Created with
 * protocol 0, so nothing is queued before bind() narrows it. */
static int cb_packet_socket(struct cb *cb, uint16_t ethertype)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ethertype),
				   .sll_ifindex = cb->ifindex };
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		if (errno == EPERM || errno == EACCES)
			fprintf(stderr, "lbctl: check-backend sends raw frames and needs CAP_NET_RAW "
				"(run it as root): socket(AF_PACKET): %s\n", strerror(errno));
		else
			fprintf(stderr, "lbctl: %s: socket(AF_PACKET): %s\n", __func__, strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		int e = errno;

		fprintf(stderr, "lbctl: %s: bind to %s: %s\n", __func__, cb->ifname, strerror(e));
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void cb_close(struct cb *cb)
{
	if (cb->ip_fd >= 0)
		close(cb->ip_fd);
	if (cb->arp_fd >= 0 && cb->arp_fd != cb->ip_fd)
		close(cb->arp_fd);
	cb->ip_fd = cb->arp_fd = -1;
}

static int cb_open(struct cb *cb)
{
	if (cb_interface(cb) < 0)
		return -1;
	if (cb->v6) {
		/* Neighbour discovery is ICMPv6: one socket for IPv6 frames serves every check. */
		cb->ip_fd = cb->arp_fd = cb_packet_socket(cb, ETH_P_IPV6);
		return cb->ip_fd < 0 ? -1 : 0;
	}
	cb->arp_fd = cb_packet_socket(cb, ETH_P_ARP);
	if (cb->arp_fd < 0)
		return -1;
	cb->ip_fd = cb_packet_socket(cb, ETH_P_IP);
	if (cb->ip_fd < 0) {
		cb_close(cb);
		return -1;
	}
	return 0;
}

/* Sends a complete Ethernet frame; the destination is the frame's own. */
static int cb_send(struct cb *cb, int fd, const uint8_t *frame, size_t len)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = cb->ifindex, .sll_halen = 6 };

	memcpy(sll.sll_addr, frame, 6);
	memcpy(&sll.sll_protocol, frame + 12, 2);
	if (sendto(fd, frame, len, 0, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		fprintf(stderr, "lbctl: %s: sendto on %s: %s\n", __func__, cb->ifname, strerror(errno));
		return -1;
	}
	return 0;
}

/* Waits until deadline (clock_ms) for the next well-formed frame received (not sent) on fd.
 * Returns 1 with it in buf and parsed in p, 0 at the deadline, -1 on error. */
static int cb_recv(int fd, uint64_t deadline, uint8_t *buf, size_t size, struct pkt *p)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		struct sockaddr_ll sll;
		socklen_t sl = sizeof(sll);
		uint64_t now = clock_ms();
		ssize_t n;
		int r;

		if (now >= deadline)
			return 0;
		r = poll(&pfd, 1, (int)(deadline - now));
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "lbctl: %s: poll: %s\n", __func__, strerror(errno));
			return -1;
		}
		if (r <= 0)
			continue;
		n = recvfrom(fd, buf, size, MSG_DONTWAIT, (struct sockaddr *)&sll, &sl);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			fprintf(stderr, "lbctl: %s: recvfrom: %s\n", __func__, strerror(errno));
			return -1;
		}
		if (sll.sll_pkttype == PACKET_OUTGOING)
			continue;
		if (pkt_parse(buf, (uint32_t)n, p) == PKT_OK)
			return 1;
	}
}

/* ---- frames ------------------------------------------------------------------------------------ */

/* Who has target? An ARP request, or for IPv6 a Neighbour Solicitation to its solicited-node group. */
static int cb_solicit(struct cb *cb, const struct ipaddr *target)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, zero[6];
	uint8_t f[PKT_ARP_LEN > PKT_NS_LEN ? PKT_ARP_LEN : PKT_NS_LEN];

	if (cb->v6) {
		pkt_ns_build(f, cb->mac, &cb->src, target);
		return cb_send(cb, cb->ip_fd, f, PKT_NS_LEN);
	}
	pkt_arp_build(f, cb->mac, bcast, 1, ipaddr_v4(&cb->src), zero, ipaddr_v4(target));
	return cb_send(cb, cb->arp_fd, f, PKT_ARP_LEN);
}

/* The MAC that answers for target in this frame: the sender of an ARP reply, or the Ethernet source of
 * a Neighbour Advertisement (RFC 4861 7.2.5: the target link-layer address option names the same one
 * on an Ethernet). NULL if the frame is no such answer. */
static const uint8_t *cb_neigh_answer(const struct cb *cb, const uint8_t *frame, const struct pkt *p,
				      const struct ipaddr *target)
{
	if (!cb->v6)
		return p->kind == PKT_ARP && p->arp_op == 2 && p->arp_spa == ipaddr_v4(target) ? p->arp_sha : NULL;
	if (p->kind != PKT_IPV6 || !p->nd_valid || p->icmp_type != 136 || !ipaddr_eq(&p->nd_target, target))
		return NULL;
	return p->nd_lladdr ? p->nd_lladdr : frame + 6;
}

/* Ethernet (to the backend's MAC) and IP headers of the backend's family (IPv6 without extension
 * headers), from our address to dst, for l4len bytes of payload: the frame lbd forwards. Returns the
 * offset of the L4 header. */
static size_t cb_ip_header(struct cb *cb, uint8_t *f, const struct ipaddr *dst, uint8_t proto, size_t l4len)
{
	uint8_t *ip = f + 14;
	uint16_t ethertype = htons(cb->v6 ? ETH_P_IPV6 : ETH_P_IP);

	memcpy(f, cb->be_mac, 6);
	memcpy(f + 6, cb->mac, 6);
	memcpy(f + 12, &ethertype, 2);
	if (cb->v6) {
		uint16_t plen = htons((uint16_t)l4len);

		memset(ip, 0, 40);
		ip[0] = 0x60;
		memcpy(ip + 4, &plen, 2);
		ip[6] = proto;
		ip[7] = 64;
		memcpy(ip + 8, cb->src.b, 16);
		memcpy(ip + 24, dst->b, 16);
		return 14 + 40;
	}
	uint16_t tot = htons((uint16_t)(20 + l4len)), id = (uint16_t)cb_random(), df = htons(0x4000), csum;
	uint32_t s4 = ipaddr_v4(&cb->src), d4 = ipaddr_v4(dst);

	memset(ip, 0, 20);
	ip[0] = 0x45;
	memcpy(ip + 2, &tot, 2);
	memcpy(ip + 4, &id, 2);
	memcpy(ip + 6, &df, 2);
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, &s4, 4);
	memcpy(ip + 16, &d4, 4);
	csum = pkt_csum(ip, 20);
	memcpy(ip + 10, &csum, 2);
	return 14 + 20;
}

/* TCP/UDP checksum over the pseudo header of the family and the segment (its checksum field zero). */
static uint16_t cb_l4_csum(const struct cb *cb, const struct ipaddr *dst, uint8_t proto, const uint8_t *l4,
			   size_t len)
{
	uint8_t buf[12 + CB_FRAME_MAX];
	uint16_t n = htons((uint16_t)len);
	uint32_t s4 = ipaddr_v4(&cb->src), d4 = ipaddr_v4(dst);

	if (cb->v6)
		return pkt_csum6(&cb->src, dst, proto, l4, (uint32_t)len);
	memcpy(buf, &s4, 4);
	memcpy(buf + 4, &d4, 4);
	buf[8] = 0;
	buf[9] = proto;
	memcpy(buf + 10, &n, 2);
	memcpy(buf + 12, l4, len);
	return pkt_csum(buf, (uint32_t)(12 + len));
}

/* A TCP segment from our address:sport to the target, through the backend's MAC; a SYN carries an
 * MSS option like any real one. Returns the frame length. */
static size_t cb_tcp_frame(struct cb *cb, uint8_t *f, const struct cb_target *t, uint16_t sport, uint32_t seq,
			   uint8_t flags)
{
	size_t hl = (flags & CB_TH_SYN) ? 24 : 20, off;
	uint16_t sp = htons(sport), dp = htons(t->port), win = htons(flags & CB_TH_SYN ? 64240 : 0), csum;
	uint32_t sq = htonl(seq);
	uint8_t *tcp;

	memset(f, 0, CB_ETH_MIN);
	off = cb_ip_header(cb, f, &t->vip, IPPROTO_TCP, hl);
	tcp = f + off;
	memset(tcp, 0, hl);
	memcpy(tcp, &sp, 2);
	memcpy(tcp + 2, &dp, 2);
	memcpy(tcp + 4, &sq, 4);
	tcp[12] = (uint8_t)((hl / 4) << 4);
	tcp[13] = flags;
	memcpy(tcp + 14, &win, 2);
	if (hl == 24) {
		tcp[20] = 2;            /* MSS 1460 */
		tcp[21] = 4;
		tcp[22] = 0x05;
		tcp[23] = 0xb4;
	}
	csum = cb_l4_csum(cb, &t->vip, IPPROTO_TCP, tcp, hl);
	memcpy(tcp + 16, &csum, 2);
	return off + hl < CB_ETH_MIN ? CB_ETH_MIN : off + hl;
}

/* A UDP datagram from our address:sport to the target, through the backend's MAC. */
static size_t cb_udp_frame(struct cb *cb, uint8_t *f, const struct cb_target *t, uint16_t sport)
{
	size_t plen = sizeof(CB_UDP_PAYLOAD) - 1, ulen = 8 + plen, off;
	uint16_t sp = htons(sport), dp = htons(t->port), ul = htons((uint16_t)ulen), csum;
	uint8_t *udp;

	memset(f, 0, CB_ETH_MIN);
	off = cb_ip_header(cb, f, &t->vip, IPPROTO_UDP, ulen);
	udp = f + off;
	memcpy(udp, &sp, 2);
	memcpy(udp + 2, &dp, 2);
	memcpy(udp + 4, &ul, 2);
	memset(udp + 6, 0, 2);
	memcpy(udp + 8, CB_UDP_PAYLOAD, plen);
	csum = cb_l4_csum(cb, &t->vip, IPPROTO_UDP, udp, ulen);
	if (csum == 0)
		csum = 0xffff;          /* RFC 768: zero means "no checksum" (RFC 8200 8.1: IPv6 must have one) */
	memcpy(udp + 6, &csum, 2);
	return off + ulen < CB_ETH_MIN ? CB_ETH_MIN : off + ulen;
}

/* ---- the checks -------------------------------------------------------------------------------- */

/* Check 1: the backend answers ARP on our interface; learns its MAC. */
static int cb_check_reachable(struct cb *cb)
{
	uint64_t t0 = clock_ms(), deadline = t0 + CB_ARP_WAIT_MS;
	uint8_t buf[CB_FRAME_MAX];
	char be[IPADDR_STRLEN], mac[18], fix[256];
	const uint8_t *m;
	struct pkt p;
	int r;

	ipaddr_str(&cb->backend, be);
	if (cb_solicit(cb, &cb->backend) < 0)
		return -1;
	while ((r = cb_recv(cb->arp_fd, deadline, buf, sizeof(buf), &p)) > 0) {
		/* The answer to us: ARP to our address; a solicited NA to our address (RFC 4861 7.2.4). */
		if (!(m = cb_neigh_answer(cb, buf, &p, &cb->backend)) ||
		    (cb->v6 ? !ipaddr_eq(&p.dst, &cb->src) : p.arp_tpa != ipaddr_v4(&cb->src)))
			continue;
		memcpy(cb->be_mac, m, 6);
		cb->be_mac_known = 1;
		cb_report(cb, CB_LEVEL_OK, NULL, "reachable: %s is at %s (%s answer in %llu ms)", be,
			  cb_mac_str(cb->be_mac, mac, sizeof(mac)), cb_nd_name(cb), (unsigned long long)(clock_ms() - t0));
		return 0;
	}
	if (r < 0)
		return -1;
	snprintf(fix, sizeof(fix), "check that %s is up, has the address %s and is on the same LAN (and VLAN) "
		 "as %s: DSR forwards by MAC address", be, be, cb->ifname);
	cb_report(cb, CB_LEVEL_FAIL, fix, "reachable: %s is unreachable: no answer to %s on %s within %d ms", be,
		  cb->v6 ? "a Neighbour Solicitation" : "ARP", cb->ifname, CB_ARP_WAIT_MS);
	return 0;
}

/* Check 2: nobody but the balancer answers ARP (IPv6: Neighbour Solicitations) for the VIP; the backend
 * above all must not. */
static int cb_check_vip_arp(struct cb *cb, const struct ipaddr *vip)
{
	uint8_t owners[CB_MAX_OWNERS][6], buf[CB_FRAME_MAX];
	char be[IPADDR_STRLEN], v[IPADDR_STRLEN], macs[CB_MAX_OWNERS * 20] = "", mac[18], fix[320];
	size_t n_owners = 0, used = 0;
	uint64_t deadline = clock_ms() + CB_VIP_ARP_WAIT_MS;
	int from_backend = 0, r;
	const char *nd = cb_nd_name(cb);
	const uint8_t *m;
	struct pkt p;

	ipaddr_str(&cb->backend, be);
	ipaddr_str(vip, v);
	if (cb_solicit(cb, vip) < 0)
		return -1;
	while ((r = cb_recv(cb->arp_fd, deadline, buf, sizeof(buf), &p)) > 0) {
		size_t i;

		if (!(m = cb_neigh_answer(cb, buf, &p, vip)))
			continue;
		if (memcmp(m, cb->be_mac, 6) == 0) {
			from_backend = 1;
			continue;
		}
		for (i = 0; i < n_owners && memcmp(owners[i], m, 6) != 0; i++)
			;
		if (i == n_owners && n_owners < CB_MAX_OWNERS)
			memcpy(owners[n_owners++], m, 6);
	}
	if (r < 0)
		return -1;
	for (size_t i = 0; i < n_owners; i++)
		used += (size_t)snprintf(macs + used, sizeof(macs) - used, "%s%s", i ? ", " : "",
					 cb_mac_str(owners[i], mac, sizeof(mac)));
	if (from_backend && cb->v6) {
		/* Linux answers no solicitation for an address on lo: the VIP is on a LAN interface. */
		snprintf(fix, sizeof(fix), "on %s take the VIP off its LAN interface and put it on lo as %s/128 "
			 "(scripts/dsr-backend setup %s); IPv6 needs no sysctl for this", be, v, v);
		cb_report(cb, CB_LEVEL_FAIL, fix, "VIP NDP: %s answers Neighbour Solicitations for the VIP %s and "
			  "steals it from the balancer", be, v);
	} else if (from_backend) {
		snprintf(fix, sizeof(fix), "on %s set arp_ignore=1 and arp_announce=2 (net.ipv4.conf.all and its LAN "
			 "interface); the VIP belongs on lo with /32 (scripts/dsr-backend setup %s)", be, v);
		cb_report(cb, CB_LEVEL_FAIL, fix, "VIP ARP: %s answers ARP for the VIP %s and steals it from the "
			  "balancer", be, v);
	} else if (n_owners > 1) {
		snprintf(fix, sizeof(fix), "only the active balancer may answer %s for a VIP: find the others (ip "
			 "neigh, %s) and set them up as DSR backends or stop them", nd, cb->v6 ? "ndisc6" : "arping");
		cb_report(cb, CB_LEVEL_WARN, fix, "VIP %s: %s does not answer %s for %s, but several hosts do: %s", nd,
			  be, nd, v, macs);
	} else if (n_owners == 1) {
		cb_report(cb, CB_LEVEL_OK, NULL, "VIP %s: %s does not answer %s for %s (%s does: the active "
			  "balancer, if that is its MAC)", nd, be, nd, v, macs);
	} else {
		cb_report(cb, CB_LEVEL_OK, NULL, "VIP %s: %s does not answer %s for %s (nobody else did either: "
			  "no balancer is active, or it is this node)", nd, be, nd, v);
	}
	return 0;
}

/* Is this frame an answer to our probe from our address:sport to the target? Fills a. */
static int cb_match_answer(const struct cb *cb, const struct cb_target *t, uint16_t sport, const uint8_t *frame,
			   const struct pkt *p, struct cb_answer *a)
{
	/* Destination unreachable, port unreachable: ICMP 3/3, ICMPv6 1/4 (RFC 4443 3.1). */
	uint8_t icmp = cb->v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, unreach = cb->v6 ? 1 : 3, port_code = cb->v6 ? 4 : 3;

	if (p->kind != (cb->v6 ? PKT_IPV6 : PKT_IPV4) || !ipaddr_eq(&p->dst, &cb->src) || p->later_frag)
		return 0;
	if (p->proto == t->proto && p->have_ports && ipaddr_eq(&p->src, &t->vip) && p->sport == htons(t->port) &&
	    p->dport == htons(sport)) {
		if (t->proto == IPPROTO_UDP)
			a->kind = CB_ANS_OPEN;
		else if (p->tcp_flags & CB_TH_RST)
			a->kind = CB_ANS_CLOSED;
		else if ((p->tcp_flags & (CB_TH_SYN | CB_TH_ACK)) == (CB_TH_SYN | CB_TH_ACK))
			a->kind = CB_ANS_OPEN;
		else
			return 0;
	} else if (p->proto == icmp && p->have_inner && p->in_proto == t->proto &&
		   ipaddr_eq(&p->in_src, &cb->src) && ipaddr_eq(&p->in_dst, &t->vip) && p->in_sport == htons(sport) &&
		   p->in_dport == htons(t->port)) {
		/* Port unreachable is how a host without a UDP socket on the port answers. */
		a->kind = t->proto == IPPROTO_UDP && p->icmp_type == unreach && p->icmp_code == port_code ? CB_ANS_CLOSED
													 : CB_ANS_ICMP;
		a->icmp_type = p->icmp_type;
		a->icmp_code = p->icmp_code;
	} else {
		return 0;
	}
	memcpy(a->mac, frame + 6, 6);
	a->from = p->src;
	return 1;
}

/* Waits for the first answer to our probe; a->kind stays CB_ANS_NONE at the deadline. */
static int cb_wait_answer(struct cb *cb, const struct cb_target *t, uint16_t sport, struct cb_answer *a)
{
	uint64_t deadline = clock_ms() + CB_PROBE_WAIT_MS;
	uint8_t buf[CB_FRAME_MAX];
	struct pkt p;
	int r;

	memset(a, 0, sizeof(*a));
	while ((r = cb_recv(cb->ip_fd, deadline, buf, sizeof(buf), &p)) > 0)
		if (cb_match_answer(cb, t, sport, buf, &p, a))
			return 0;
	return r;
}

/* Prints the verdict of check 3 from the answer to the SYN or datagram. */
static void cb_report_vip_traffic(struct cb *cb, const struct cb_target *t, const struct cb_answer *a)
{
	char be[IPADDR_STRLEN], v[IPADDR_STRLEN], vp[IPADDR_PORT_STRLEN], from[IPADDR_STRLEN], mac[18], fix[320];
	char svc[CFG_NAME_MAX + IPADDR_PORT_STRLEN + 8];
	const char *proto = cb_proto_str(t->proto);
	int tcp = t->proto == IPPROTO_TCP;
	unsigned hl = cb_host_len(cb);

	ipaddr_str(&cb->backend, be);
	ipaddr_str(&t->vip, v);
	ipaddr_str(&a->from, from);
	snprintf(svc, sizeof(svc), "%s%s%s/%s", t->name, t->name[0] ? " " : "", ipaddr_port_str(&t->vip, t->port, vp),
		 proto);
	if (a->kind != CB_ANS_NONE && memcmp(a->mac, cb->be_mac, 6) != 0) {
		snprintf(fix, sizeof(fix), "put the VIP on %s's lo with /%u (scripts/dsr-backend setup %s) and do not "
			 "let it route packets for the VIP on (%s)", be, hl, v,
			 cb->v6 ? "net.ipv6.conf.all.forwarding" : "ip_forward");
		cb_report(cb, CB_LEVEL_FAIL, fix, "%s: the answer came from another host (%s at %s): %s passed the "
			  "packet for the VIP on instead of accepting it", svc, from,
			  cb_mac_str(a->mac, mac, sizeof(mac)), be);
		return;
	}
	switch (a->kind) {
	case CB_ANS_OPEN:
		cb_report(cb, CB_LEVEL_OK, NULL, "%s: %s accepts packets for the VIP (%s from the VIP to a %s sent "
			  "to its MAC)", svc, be, tcp ? "SYN-ACK" : "reply", tcp ? "SYN" : "datagram");
		break;
	case CB_ANS_CLOSED:
		snprintf(fix, sizeof(fix), "start the service on %s, listening on %s:%u (or on the VIP and "
			 "its own address)", be, cb->v6 ? "[::]" : "0.0.0.0", t->port);
		cb_report(cb, CB_LEVEL_FAIL, fix, "%s: the VIP is on the backend but nothing listens on port %u "
			  "(%s answered with %s)", svc, t->port, be, tcp ? "RST" : cb->v6 ? "ICMPv6 port unreachable" :
			  "ICMP port unreachable");
		break;
	case CB_ANS_ICMP:
		snprintf(fix, sizeof(fix), "check the firewall of %s (and of any host on the way) for %s port %u",
			 be, proto, t->port);
		cb_report(cb, CB_LEVEL_FAIL, fix, "%s: %s rejects packets for the VIP: %s type %u code %u from %s",
			  svc, be, cb->v6 ? "ICMPv6" : "ICMP", a->icmp_type, a->icmp_code, from);
		break;
	case CB_ANS_NONE:
		if (!tcp) {
			cb_report(cb, CB_LEVEL_WARN, NULL, "%s: no answer to a datagram within %d ms: inconclusive, "
				  "cannot verify UDP without an application probe (no ICMP port unreachable: "
				  "something listens, or the VIP is not on %s)", svc, CB_PROBE_WAIT_MS, be);
			break;
		}
		snprintf(fix, sizeof(fix), "on %s: ip addr add %s/%u dev lo (or scripts/dsr-backend setup %s); "
			 "check that no firewall drops it", be, v, hl, v);
		cb_report(cb, CB_LEVEL_FAIL, fix, "%s: the backend does not accept packets for the VIP: is the VIP "
			  "on lo (/%u)? (no answer to a SYN sent to its MAC within %d ms)", svc, hl, CB_PROBE_WAIT_MS);
		break;
	}
}

/* Check 3: a SYN (or datagram) for VIP:port sent to the backend's MAC, as lbd forwards a client's. */
static int cb_check_vip_traffic(struct cb *cb, const struct cb_target *t)
{
	uint16_t sport = (uint16_t)(32768 + cb_random() % 28232);
	uint32_t isn = cb_random();
	uint8_t f[CB_FRAME_MAX];
	struct cb_answer a;
	size_t len;

	if (t->proto == IPPROTO_TCP)
		len = cb_tcp_frame(cb, f, t, sport, isn, CB_TH_SYN);
	else
		len = cb_udp_frame(cb, f, t, sport);
	if (cb_send(cb, cb->ip_fd, f, len) < 0 || cb_wait_answer(cb, t, sport, &a) < 0)
		return -1;
	cb_report_vip_traffic(cb, t, &a);
	/* Free the backend's half-open connection at once; our kernel would reset it too, a bit later. */
	if (t->proto == IPPROTO_TCP && a.kind == CB_ANS_OPEN && memcmp(a.mac, cb->be_mac, 6) == 0) {
		len = cb_tcp_frame(cb, f, t, sport, isn + 1, CB_TH_RST);
		if (cb_send(cb, cb->ip_fd, f, len) < 0)
			return -1;
	}
	return 0;
}

/* TCP connect to addr:port within timeout_ms. Returns 0 or the errno that says why not. */
static int cb_connect(const struct ipaddr *addr, uint16_t port, int timeout_ms)
{
	struct sockaddr_storage ss;
	socklen_t sslen = ipaddr_sockaddr(addr, port, &ss);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;
	socklen_t elen = sizeof(int);
	int fd, err = 0, r;

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
		} else {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			uint64_t now;

			do {
				now = clock_ms();
				r = now >= deadline ? 0 : poll(&pfd, 1, (int)(deadline - now));
			} while (r < 0 && errno == EINTR);
			if (r < 0)
				err = errno;
			else if (r == 0)
				err = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
				err = errno;
		}
	}
	/* Reset rather than close: no TIME_WAIT here, no half-closed check connection there. */
	if (err == 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	return err;
}

/* Check 4: the backend's own address answers on the port, where lbd's health checks connect. */
static void cb_check_real_address(struct cb *cb, uint16_t port)
{
	char bp[IPADDR_PORT_STRLEN], fix[320];
	int err = cb_connect(&cb->backend, port, CB_CONNECT_WAIT_MS);
	const char *be = ipaddr_port_str(&cb->backend, port, bp);

	snprintf(fix, sizeof(fix), "let the service listen on %s:%u, or on both the VIP and %s%s",
		 cb->v6 ? "[::]" : "0.0.0.0", port, be, err == ETIMEDOUT ? "; check that no firewall drops it" : "");
	if (err == 0)
		cb_report(cb, CB_LEVEL_OK, NULL, "%s/tcp: the backend's own address accepts connections (health "
			  "checks connect there)", be);
	else if (err == ECONNREFUSED)
		cb_report(cb, CB_LEVEL_FAIL, fix, "%s/tcp: the backend's own address refuses connections, so "
			  "health checks will mark it down", be);
	else if (err == ETIMEDOUT)
		cb_report(cb, CB_LEVEL_FAIL, fix, "%s/tcp: no answer on the backend's own address within %d ms, "
			  "so health checks will mark it down", be, CB_CONNECT_WAIT_MS);
	else
		cb_report(cb, CB_LEVEL_FAIL, fix, "%s/tcp: connect to the backend's own address: %s", be,
			  strerror(err));
}

/* Did an earlier target already cover target i's VIP (vip) or health-check port (!vip)? */
static int cb_seen(const struct cb *cb, size_t i, int vip)
{
	const struct cb_target *t = &cb->targets[i];

	for (size_t j = 0; j < i; j++) {
		const struct cb_target *o = &cb->targets[j];
		if (vip ? ipaddr_eq(&o->vip, &t->vip) : (o->health_checked && o->port == t->port))
			return 1;
	}
	return 0;
}

/* All checks in order; checks 2 and 3 need the backend's MAC from check 1. */
static int cb_run(struct cb *cb)
{
	char be[IPADDR_STRLEN], bp[IPADDR_PORT_STRLEN], ours[IPADDR_STRLEN], mac[18];

	printf("backend %s, from %s (%s at %s)\n", ipaddr_str(&cb->backend, be), cb->ifname,
	       ipaddr_str(&cb->src, ours), cb_mac_str(cb->mac, mac, sizeof(mac)));
	if (ipaddr_eq(&cb->backend, &cb->src)) {
		fprintf(stderr, "lbctl: check-backend: %s is this node's own address on %s\n", be, cb->ifname);
		return -1;
	}
	if (cb_check_reachable(cb) < 0)
		return -1;
	if (!cb->be_mac_known) {
		cb_report(cb, CB_LEVEL_SKIP, NULL, "the other checks need %s to answer %s", be, cb_nd_name(cb));
		return 0;
	}
	for (size_t i = 0; i < cb->n_targets; i++)
		if (!cb_seen(cb, i, 1) && cb_check_vip_arp(cb, &cb->targets[i].vip) < 0)
			return -1;
	for (size_t i = 0; i < cb->n_targets; i++)
		if (cb_check_vip_traffic(cb, &cb->targets[i]) < 0)
			return -1;
	for (size_t i = 0; i < cb->n_targets; i++) {
		const struct cb_target *t = &cb->targets[i];

		if (t->health_checked && !cb_seen(cb, i, 0))
			cb_check_real_address(cb, t->port);
		else if (!t->health_checked)
			cb_report(cb, CB_LEVEL_SKIP, NULL, "%s/%s: own address not checked: %s",
				  ipaddr_port_str(&cb->backend, t->port, bp), cb_proto_str(t->proto), t->name[0] ? "the service has check = none" :
				  "no health check is known for a UDP service without a config");
	}
	return 0;
}

int checkbackend_main(int argc, char **argv, const char *cfg_path)
{
	struct cb_opts o = { .cfg_path = cfg_path };
	struct cb cb = { .arp_fd = -1, .ip_fd = -1 };
	int rc;

	rc = cb_parse_args(argc, argv, &o);
	if (rc != 0)
		return rc > 0 ? CHECKBACKEND_OK : CHECKBACKEND_USAGE;
	rc = cb_setup(&cb, &o);
	if (rc != 0)
		return rc;
	if (cb_open(&cb) < 0)
		return CHECKBACKEND_CANNOT;
	rc = cb_run(&cb);
	cb_close(&cb);
	if (rc < 0)
		return CHECKBACKEND_CANNOT;
	if (cb.fails)
		printf("%s is NOT ready for DSR: %u check%s failed\n", o.address, cb.fails, cb.fails == 1 ? "" : "s");
	else
		printf("%s is ready for DSR%s\n", o.address, cb.warns ? " (see the warnings)" : "");
	return cb.fails ? CHECKBACKEND_FAIL : CHECKBACKEND_OK;
}
