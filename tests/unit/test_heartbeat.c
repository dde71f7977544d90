/* Unit tests for the addresses a heartbeat carries (vrrpd/heartbeat.c): IPv4 and IPv6 senders and VIPs
 * through pack and unpack, an IPv4 pair's heartbeat unchanged on the wire, and every malformed address
 * field refused. Then the heartbeat socket's filter (vrrpd/advert.c advert_filter_prog) on loopback
 * sockets: it must pass the peer's address and drop any other, for IPv4 and for each word of IPv6. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "vrrpd/heartbeat.h"
#include "vrrpd/vrrpd.h"

static struct ipaddr addr(const char *s)
{
	struct ipaddr a;

	assert_int_equal(ipaddr_parse(s, &a), 0);
	return a;
}

/* hb packed and unpacked again, as the peer receives it; free with dsrlb__heartbeat__free_unpacked. */
static Dsrlb__Heartbeat *wire(const Dsrlb__Heartbeat *hb, uint8_t *buf, size_t cap, size_t *len)
{
	Dsrlb__Heartbeat *out;

	*len = dsrlb__heartbeat__get_packed_size(hb);
	assert_true(*len <= cap);
	dsrlb__heartbeat__pack(hb, buf);
	out = dsrlb__heartbeat__unpack(NULL, *len, buf);
	assert_non_null(out);
	return out;
}

/* Decodes hb; returns get_addrs' result, the sender and the VIPs in *sender, vips, *n. */
static int get(const Dsrlb__Heartbeat *hb, struct ipaddr *sender, struct ipaddr *vips, size_t cap, size_t *n)
{
	const char *why = NULL;
	int rc = heartbeat_get_addrs(hb, sender, vips, cap, n, &why);

	if (rc < 0)
		assert_non_null(why);
	return rc;
}

/* An IPv4 node with IPv4 VIPs sends byte for byte what it sent before address6 and vips6 existed. */
static void test_ipv4_unchanged_on_the_wire(void **state)
{
	const struct ipaddr self = addr("192.0.2.11"), vips[2] = { addr("192.0.2.100"), addr("192.0.2.101") };
	uint32_t old_vips[2] = { vips[0].w[3], vips[1].w[3] };
	Dsrlb__Heartbeat hb = DSRLB__HEARTBEAT__INIT, old = DSRLB__HEARTBEAT__INIT, *rx;
	struct heartbeat_buf hbuf;
	uint8_t a[512], b[512];
	size_t alen, blen, n;
	struct ipaddr sender, got[4];

	hb.node = old.node = "lb1";
	hb.priority = old.priority = 150;
	heartbeat_put_addrs(&hb, &hbuf, &self, vips, 2);
	old.address = inet_addr("192.0.2.11");
	old.n_vips = 2;
	old.vips = old_vips;
	assert_int_equal(hb.address6.len, 0);
	assert_int_equal(hb.n_vips6, 0);
	rx = wire(&hb, a, sizeof(a), &alen);
	dsrlb__heartbeat__free_unpacked(wire(&old, b, sizeof(b), &blen), NULL);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);

	assert_int_equal(get(rx, &sender, got, 4, &n), 0);
	assert_true(ipaddr_eq(&sender, &self));
	assert_int_equal(n, 2);
	assert_true(ipaddr_eq(&got[0], &vips[0]));
	assert_true(ipaddr_eq(&got[1], &vips[1]));
	dsrlb__heartbeat__free_unpacked(rx, NULL);
}

/* An IPv6 sender, and VIPs of both families (IPv4 first on the way back). */
static void test_ipv6_sender_round_trip(void **state)
{
	const struct ipaddr self = addr("2001:db8::12");
	const struct ipaddr vips[3] = { addr("2001:db8::100"), addr("192.0.2.100"), addr("2001:db8:0:1::100") };
	Dsrlb__Heartbeat hb = DSRLB__HEARTBEAT__INIT, *rx;
	struct heartbeat_buf hbuf;
	uint8_t buf[512];
	size_t len, n;
	struct ipaddr sender, got[CFG_MAX_SERVICES];

	heartbeat_put_addrs(&hb, &hbuf, &self, vips, 3);
	assert_int_equal(hb.address, 0);
	assert_int_equal(hb.address6.len, 16);
	assert_int_equal(hb.n_vips, 1);
	assert_int_equal(hb.n_vips6, 2);
	rx = wire(&hb, buf, sizeof(buf), &len);
	assert_int_equal(get(rx, &sender, got, CFG_MAX_SERVICES, &n), 0);
	assert_true(ipaddr_eq(&sender, &self));
	assert_int_equal(n, 3);
	assert_true(ipaddr_eq(&got[0], &vips[1]));
	assert_true(ipaddr_eq(&got[1], &vips[0]));
	assert_true(ipaddr_eq(&got[2], &vips[2]));
	/* Fewer slots than VIPs: the first ones, and no write past cap. */
	got[2] = addr("192.0.2.1");
	assert_int_equal(get(rx, &sender, got, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_true(ipaddr_eq(&got[2], &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), inet_addr("192.0.2.1") } }));
	dsrlb__heartbeat__free_unpacked(rx, NULL);

	/* More VIPs than a config can have: the first CFG_MAX_SERVICES are sent. */
	struct ipaddr many[CFG_MAX_SERVICES + 3];
	for (size_t i = 0; i < CFG_MAX_SERVICES + 3; i++) {
		many[i] = self;
		many[i].b[15] = (uint8_t)i;
	}
	heartbeat_put_addrs(&hb, &hbuf, &self, many, CFG_MAX_SERVICES + 3);
	assert_int_equal(hb.n_vips6, CFG_MAX_SERVICES);
	assert_int_equal(hb.n_vips, 0);
	assert_null(hb.vips);
}

/* A heartbeat without any address: no sender (the caller's peer check refuses it), not malformed. */
static void test_no_address(void **state)
{
	Dsrlb__Heartbeat hb = DSRLB__HEARTBEAT__INIT;
	struct ipaddr sender = addr("192.0.2.1"), got[1];
	size_t n = 7;

	assert_int_equal(get(&hb, &sender, got, 1, &n), 0);
	assert_true(ipaddr_is_none(&sender));
	assert_int_equal(n, 0);
}

/* Every breach of heartbeat.proto's address rule, each refused after a trip over the wire. */
static void test_hostile_addresses(void **state)
{
	uint8_t bytes[40], buf[1024];
	const struct ipaddr mapped = addr("192.0.2.12"), v6 = addr("2001:db8::12");
	ProtobufCBinaryData good = { 16, (uint8_t *)v6.b }, vip[3];
	Dsrlb__Heartbeat hb, *rx;
	struct ipaddr sender, got[4];
	size_t len, n;

	memset(bytes, 0xab, sizeof(bytes));
	/* address6 of every length but 16 (0 is "not sent"). */
	for (size_t l = 1; l <= sizeof(bytes); l++) {
		dsrlb__heartbeat__init(&hb);
		hb.address6.data = bytes;
		hb.address6.len = l;
		rx = wire(&hb, buf, sizeof(buf), &len);
		assert_int_equal(get(rx, &sender, got, 4, &n), l == 16 ? 0 : -1);
		assert_int_equal(n, 0);
		dsrlb__heartbeat__free_unpacked(rx, NULL);
	}
	/* Both addresses. */
	dsrlb__heartbeat__init(&hb);
	hb.address = inet_addr("192.0.2.12");
	hb.address6 = good;
	rx = wire(&hb, buf, sizeof(buf), &len);
	assert_int_equal(get(rx, &sender, got, 4, &n), -1);
	dsrlb__heartbeat__free_unpacked(rx, NULL);
	/* An IPv4 address in its IPv4-mapped form: it has one encoding, the fixed32. */
	dsrlb__heartbeat__init(&hb);
	hb.address6.data = (uint8_t *)mapped.b;
	hb.address6.len = 16;
	rx = wire(&hb, buf, sizeof(buf), &len);
	assert_int_equal(get(rx, &sender, got, 4, &n), -1);
	dsrlb__heartbeat__free_unpacked(rx, NULL);
	/* A bad IPv6 VIP anywhere refuses the whole heartbeat, also beyond the slots the caller has. */
	for (size_t l = 0; l <= sizeof(bytes); l++) {
		if (l == 16)
			continue;
		for (size_t pos = 0; pos < 3; pos++) {
			dsrlb__heartbeat__init(&hb);
			hb.address6 = good;
			vip[0] = vip[1] = vip[2] = good;
			vip[pos].data = bytes;
			vip[pos].len = l;
			hb.n_vips6 = 3;
			hb.vips6 = vip;
			rx = wire(&hb, buf, sizeof(buf), &len);
			assert_int_equal(get(rx, &sender, got, 1, &n), -1);
			assert_int_equal(n, 0);
			dsrlb__heartbeat__free_unpacked(rx, NULL);
		}
	}
	dsrlb__heartbeat__init(&hb);
	vip[0] = good;
	vip[1].data = (uint8_t *)mapped.b;
	vip[1].len = 16;
	hb.n_vips6 = 2;
	hb.vips6 = vip;
	rx = wire(&hb, buf, sizeof(buf), &len);
	assert_int_equal(get(rx, &sender, got, 4, &n), -1);
	dsrlb__heartbeat__free_unpacked(rx, NULL);
}

/* ---- the socket filter, on loopback ---- */

/* A UDP socket of family af bound to the address s (port 0: any), with the drop count switched on. */
static int udp_on(int af, const char *s)
{
	struct ipaddr a = addr(s);
	struct sockaddr_storage ss;
	socklen_t len = ipaddr_sockaddr(&a, 0, &ss);
	int fd = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	if (af == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void attach(int fd, const char *peer)
{
	struct sock_filter prog[ADVERT_FILTER_MAX];
	struct ipaddr p = addr(peer);
	struct sock_fprog fp = { .filter = prog };

	fp.len = (unsigned short)advert_filter_prog(&p, prog);
	assert_true(fp.len <= ADVERT_FILTER_MAX);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)), 0);
}

static void send_to(int from, int to, char tag)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	assert_int_equal(getsockname(to, (struct sockaddr *)&ss, &len), 0);
	assert_int_equal(sendto(from, &tag, 1, 0, (struct sockaddr *)&ss, len), 1);
}

/* The socket's drop count, from the kernel's own view of the socket. */
static uint32_t drops_of(int fd)
{
	uint32_t mi[SK_MEMINFO_VARS];
	socklen_t len = sizeof(mi);

	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &len), 0);
	return mi[SK_MEMINFO_DROPS];
}

/* Polls (bounded: a second) until the socket has dropped n datagrams in all; nothing may be queued. */
static void wait_drops(int fd, uint32_t n)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	for (int i = 0; i < 1000 && drops_of(fd) < n; i++)
		poll(NULL, 0, 1);
	assert_int_equal(drops_of(fd), n);
	assert_int_equal(poll(&pfd, 1, 0), 0);
}

/* The next datagram (waiting for it at most a second): its one byte, and the drop count it carries. */
static char recv_one(int fd, uint32_t *drops)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	union { struct cmsghdr align; uint8_t b[CMSG_SPACE(sizeof(uint32_t))]; } ctl;
	char tag = 0;
	struct iovec iov = { .iov_base = &tag, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };

	assert_int_equal(poll(&pfd, 1, 1000), 1);
	assert_int_equal(recvmsg(fd, &mh, MSG_DONTWAIT), 1);
	*drops = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
			memcpy(drops, CMSG_DATA(c), sizeof(*drops));
	return tag;
}

/* A datagram from a stranger is dropped by the kernel (counted), the peer's gets through and carries
 * the count, as vrrpd reads it. */
static void check_filter(int rx, int peer, int stranger, uint32_t drops_before)
{
	uint32_t drops;

	send_to(stranger, rx, 's');
	wait_drops(rx, drops_before + 1);
	send_to(peer, rx, 'p');
	assert_int_equal(recv_one(rx, &drops), 'p');
	assert_int_equal(drops, drops_before + 1);
}

static void test_filter_ipv4(void **state)
{
	int rx = udp_on(AF_INET, "127.0.0.1"), peer = udp_on(AF_INET, "127.0.0.2");
	int stranger = udp_on(AF_INET, "127.0.0.3"), near = udp_on(AF_INET, "127.0.0.18");

	if (rx < 0 || peer < 0 || stranger < 0 || near < 0)
		skip();
	attach(rx, "127.0.0.2");
	check_filter(rx, peer, stranger, 0);
	check_filter(rx, peer, near, 1);        /* differs in one bit */
	close(rx);
	close(peer);
	close(stranger);
	close(near);
}

/* Loopback has one IPv6 address, ::1: filters for addresses that differ from it in each of the four
 * words in turn drop its datagrams; the filter for ::1 passes them. */
static void test_filter_ipv6(void **state)
{
	static const char *const others[] = { "1::1", "0:0:1::1", "::1:0:0:1", "::2", "::ffff:0.0.0.1" };
	int rx = udp_on(AF_INET6, "::1"), tx = udp_on(AF_INET6, "::1");
	uint32_t drops = 0;

	if (rx < 0 || tx < 0)
		skip();     /* no IPv6 on this host */
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		attach(rx, others[i]);
		send_to(tx, rx, 's');
		wait_drops(rx, (uint32_t)i + 1);
		attach(rx, "::1");
		send_to(tx, rx, 'p');
		assert_int_equal(recv_one(rx, &drops), 'p');
		assert_int_equal(drops, i + 1);
	}
	close(rx);
	close(tx);
}

/* Where the program reads: the IPv6 source is bytes 8 to 23 of the fixed header (RFC 8200 section 3),
 * the destination follows it; on loopback both are ::1, so the test above cannot tell them apart. */
static void test_filter_reads_the_source(void **state)
{
	struct sock_filter prog[ADVERT_FILTER_MAX];
	struct ipaddr p6 = addr("2001:db8::12"), p4 = addr("192.0.2.12");

	assert_int_equal(advert_filter_prog(&p6, prog), 10);
	for (uint32_t i = 0; i < 4; i++) {
		assert_int_equal(prog[2 * i].code, BPF_LD | BPF_W | BPF_ABS);
		assert_int_equal(prog[2 * i].k, (uint32_t)SKF_NET_OFF + 8 + 4 * i);
		assert_int_equal(prog[2 * i + 1].k, ntohl(p6.w[i]));
	}
	assert_int_equal(advert_filter_prog(&p4, prog), 4);
	assert_int_equal(prog[0].k, (uint32_t)SKF_NET_OFF + 12);
	assert_int_equal(prog[1].k, ntohl(p4.w[3]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_unchanged_on_the_wire),
		cmocka_unit_test(test_ipv6_sender_round_trip),
		cmocka_unit_test(test_no_address),
		cmocka_unit_test(test_hostile_addresses),
		cmocka_unit_test(test_filter_ipv4),
		cmocka_unit_test(test_filter_ipv6),
		cmocka_unit_test(test_filter_reads_the_source),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
