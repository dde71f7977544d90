/* Unit tests for common/config.c: the documented example, every default, every class of error with its
 * file:line, hostile files that must never crash the loader, the duration parser and the digest.
 * Configs are written to a private temporary directory; nothing needs root or the network. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char tmpdir[64];
static char tpath[128];

static int setup(void **state)
{
	strcpy(tmpdir, "/tmp/dsrlb-test-config-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(tpath, sizeof(tpath), "%s/dsrlb.conf", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	unlink(tpath);
	rmdir(tmpdir);
	return 0;
}

static void write_bytes(const void *buf, size_t len)
{
	FILE *f = fopen(tpath, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static struct cfg *load_bytes(const void *buf, size_t len, char *err, size_t errlen)
{
	write_bytes(buf, len);
	return cfg_load(tpath, err, errlen);
}

static struct cfg *load_text(const char *text, char *err, size_t errlen)
{
	return load_bytes(text, strlen(text), err, errlen);
}

static struct cfg *load_ok(const char *text)
{
	char err[512] = "";
	struct cfg *cfg = load_text(text, err, sizeof(err));

	if (cfg == NULL)
		fail_msg("config rejected: %s\n---\n%s---", err, text);
	return cfg;
}

static uint32_t ip(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

#define EXAMPLE \
	"[cluster]\n" \
	"interface = eth0\n" \
	"key_file = /etc/dsrlb/cluster.key\n" \
	"advert_interval = 100ms\n" \
	"\n" \
	"[node lb1]\n" \
	"address = 192.0.2.11\n" \
	"priority = 150\n" \
	"\n" \
	"[node lb2]\n" \
	"address = 192.0.2.12\n" \
	"priority = 100\n" \
	"\n" \
	"[service web]\n" \
	"vip = 192.0.2.100\n" \
	"port = 80\n" \
	"protocol = tcp\n" \
	"backend = 192.0.2.21\n" \
	"backend = 192.0.2.22 weight=2\n" \
	"backend = 192.0.2.23\n"

/* Small building blocks for the error cases; every address is distinct. */
#define CL    "[cluster]\ninterface = eth0\nkey_file = /k\n"
#define NODE  "[node a]\naddress = 10.0.0.1\npriority = 100\n"
#define SVC   "[service s]\nvip = 10.0.0.100\nport = 80\nbackend = 10.0.0.21\n"

/* mode = ecmp: up to 16 nodes, no priorities; the announcement's defaults. */
static void test_ecmp(void **state)
{
	struct cfg *cfg = load_ok(CL "mode = ecmp\n" "[node a]\naddress = 10.0.0.1\n[node b]\naddress = 10.0.0.2\n"
				  "[node c]\naddress = 10.0.0.3\n" SVC);

	(void)state;
	assert_int_equal(cfg->mode, CFG_MODE_ECMP);
	assert_int_equal(cfg->n_nodes, 3);
	assert_int_equal(cfg->nodes[2].priority, 0);
	assert_int_equal(cfg->announce_table, 100);
	assert_string_equal(cfg->announce_device, "dsrlb0");
	assert_int_equal(cfg->drain_quiet_ms, 500);
	assert_int_equal(cfg->persistence_ms, 300000);
	assert_int_equal(cfg->services[0].persistence, CFG_PERSIST_NONE);
	cfg_free(cfg);
	cfg = load_ok(CL "persistence_timeout = 1h\n" NODE SVC "persistence = client\n");
	assert_int_equal(cfg->persistence_ms, 3600000);
	assert_int_equal(cfg->services[0].persistence, CFG_PERSIST_CLIENT);
	cfg_free(cfg);
	cfg = load_ok(CL "announce_table = 4242\nannounce_device = vipann\ndrain_quiet = 2s\n" NODE SVC);
	assert_int_equal(cfg->mode, CFG_MODE_PAIR);
	assert_int_equal(cfg->announce_table, 4242);
	assert_string_equal(cfg->announce_device, "vipann");
	assert_int_equal(cfg->drain_quiet_ms, 2000);
	cfg_free(cfg);
}

static void test_example(void **state)
{
	struct cfg *cfg = load_ok(EXAMPLE);
	const struct cfg_service *s;
	uint8_t digest[CFG_DIGEST_LEN];

	assert_string_equal(cfg->path, tpath);
	assert_string_equal(cfg->interface, "eth0");
	assert_int_equal(cfg->n_key_files, 1);
	assert_string_equal(cfg->key_files[0], "/etc/dsrlb/cluster.key");
	assert_int_equal(cfg->advert_interval_ms, 100);
	/* Defaults of [cluster]. */
	assert_int_equal(cfg->preempt, 1);
	assert_int_equal(cfg->preempt_delay_ms, 0);
	assert_int_equal(cfg->garp_count, 5);
	assert_int_equal(cfg->garp_repeat_ms, 5000);
	assert_int_equal(cfg->garp_refresh_ms, 0);
	assert_int_equal(cfg->fence_ms, 400);
	assert_int_equal(cfg->lbd_timeout_ms, 1000);
	assert_int_equal(cfg->stop_timeout_ms, 3000);
	assert_int_equal(cfg->heartbeat_port, 8112);
	assert_int_equal(cfg->sync_port, 8113);
	assert_int_equal(cfg->sync_peer_timeout_ms, 3000);
	assert_int_equal(cfg->multicast.s_addr, INADDR_ANY);
	assert_int_equal(cfg->realtime, 1);
	assert_int_equal(cfg->flow_max, 1048576);
	assert_int_equal(cfg->workers, 1);
	assert_int_equal(cfg->tcp_established_ms, 900000);
	assert_int_equal(cfg->tcp_syn_ms, 60000);
	assert_int_equal(cfg->tcp_fin_ms, 120000);
	assert_int_equal(cfg->udp_ms, 300000);
	assert_int_equal(cfg->arp_refresh_ms, 5000);
	assert_string_equal(cfg->notify_master, "");
	assert_string_equal(cfg->notify_backup, "");
	assert_string_equal(cfg->notify_fault, "");
	assert_int_equal(cfg->notify_timeout_ms, 5000);

	assert_int_equal(cfg->n_nodes, 2);
	assert_string_equal(cfg->nodes[0].name, "lb1");
	assert_true(ipaddr_eq(&cfg->nodes[0].addr, &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), ip("192.0.2.11") } }));
	assert_int_equal(cfg->nodes[0].priority, 150);
	assert_int_equal(cfg->nodes[0].line, 6);
	assert_string_equal(cfg->nodes[1].name, "lb2");
	assert_true(ipaddr_eq(&cfg->nodes[1].addr, &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), ip("192.0.2.12") } }));
	assert_int_equal(cfg->nodes[1].priority, 100);
	assert_int_equal(cfg->nodes[1].line, 10);

	assert_int_equal(cfg->n_services, 1);
	s = &cfg->services[0];
	assert_string_equal(s->name, "web");
	assert_int_equal(s->line, 14);
	assert_true(ipaddr_eq(&s->vip, &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), ip("192.0.2.100") } }));
	assert_int_equal(s->port, 80);
	assert_int_equal(s->proto, IPPROTO_TCP);
	assert_int_equal(s->n_backends, 3);
	assert_true(ipaddr_eq(&s->backends[0].addr, &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), ip("192.0.2.21") } }));
	assert_int_equal(s->backends[0].weight, 1);
	assert_int_equal(s->backends[0].line, 18);
	assert_true(ipaddr_eq(&s->backends[1].addr, &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), ip("192.0.2.22") } }));
	assert_int_equal(s->backends[1].weight, 2);
	assert_int_equal(s->backends[1].line, 19);
	assert_true(ipaddr_eq(&s->backends[2].addr, &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), ip("192.0.2.23") } }));
	assert_int_equal(s->backends[2].weight, 1);
	/* Defaults of [service]. */
	assert_int_equal(s->check, CFG_CHECK_TCP);
	assert_int_equal(s->check_interval_ms, 2000);
	assert_int_equal(s->check_timeout_ms, 1000);
	assert_int_equal(s->rise, 2);
	assert_int_equal(s->fall, 3);
	assert_string_equal(s->check_path, "/");
	assert_int_equal(s->check_status, 200);
	assert_string_equal(s->check_host, "");
	assert_int_equal(s->on_backend_down, CFG_DOWN_RESCHEDULE);
	assert_true(ipaddr_is_none(&s->sorry_backend));

	crypto_generichash(digest, sizeof(digest), (const unsigned char *)EXAMPLE, strlen(EXAMPLE), NULL, 0);
	assert_memory_equal(cfg->digest, digest, sizeof(digest));
	cfg_free(cfg);
}

/* Every key set away from its default, with comments and blanks where people put them. */
static void test_every_key(void **state)
{
	static const char text[] =
		"; full config\n"
		"[cluster]\n"
		"  interface = lan-1   # indented, trailing comment\n"
		"\tkey_file = /etc/dsrlb/new.key\n"
		"key_file = /etc/dsrlb/old.key\n"
		"advert_interval = 1s\n"
		"preempt = no\n"
		"preempt_delay = 30s\n"
		"garp_count = 100\n"
		"garp_repeat = 0\n"
		"garp_refresh = 1m\n"
		"fence_timeout = 2s\n"
		"lbd_timeout = 250ms\n"
		"stop_timeout = 0\n"
		"heartbeat_port = 9000\n"
		"sync_port = 9001\n"
		"sync_peer_timeout = 10m\n"
		"multicast = 239.1.2.3\n"
		"realtime = no\n"
		"flow_max = 16777216\n"
		"workers = 16\n"
		"tcp_established_timeout = 1h\n"
		"tcp_syn_timeout = 30s\n"
		"tcp_fin_timeout = 2m\n"
		"udp_timeout = 45s\n"
		"arp_refresh = 100ms\n"
		"notify_master = /usr/local/bin/notify master ; comment\n"
		"notify_backup = /usr/local/bin/notify \"backup#1\"\n"
		"notify_fault = logger -t dsrlb fault;now\n"
		"notify_timeout = 10m\n"
		"metrics_listen = 127.0.0.1:9810\n"
		"[node only]\n"
		"address = 10.1.0.1\n"
		"priority = 254\n"
		"[service dns]\n"
		"vip = 10.1.0.53\n"
		"port = 53\n"
		"protocol = udp\n"
		"backend = 10.1.0.61 weight=0\n"
		"backend = 10.1.0.62   weight=65535\n"
		"check = none\n"
		"on_backend_down = keep\n"
		"sorry_backend = 10.1.0.99\n"
		"[service web]\n"
		"vip = 10.1.0.53\n"
		"port = 443\n"
		"backend = 10.1.0.61\n"
		"check = http\n"
		"check_interval = 500ms\n"
		"check_timeout = 499ms\n"
		"rise = 1\n"
		"fall = 100\n"
		"check_path = /health?x=1#frag\n"
		"check_status = 204\n"
		"check_host = www.example.com:8080\n"
		"[service web-udp]\n"
		"vip = 10.1.0.53\n"
		"port = 443\n"
		"protocol = udp\n"
		"backend = 10.1.0.61\n"
		"check = none\n"
		"check_timeout = 1h\n";
	struct cfg *cfg = load_ok(text);
	const struct cfg_service *s;

	assert_string_equal(cfg->interface, "lan-1");
	assert_int_equal(cfg->n_key_files, 2);
	assert_string_equal(cfg->key_files[0], "/etc/dsrlb/new.key");
	assert_string_equal(cfg->key_files[1], "/etc/dsrlb/old.key");
	assert_int_equal(cfg->advert_interval_ms, 1000);
	assert_int_equal(cfg->preempt, 0);
	assert_int_equal(cfg->preempt_delay_ms, 30000);
	assert_int_equal(cfg->garp_count, 100);
	assert_int_equal(cfg->garp_repeat_ms, 0);
	assert_int_equal(cfg->garp_refresh_ms, 60000);
	assert_int_equal(cfg->fence_ms, 2000);
	assert_int_equal(cfg->lbd_timeout_ms, 250);
	assert_int_equal(cfg->stop_timeout_ms, 0);
	assert_int_equal(cfg->heartbeat_port, 9000);
	assert_int_equal(cfg->sync_port, 9001);
	assert_int_equal(cfg->sync_peer_timeout_ms, 600000);
	assert_int_equal(cfg->multicast.s_addr, ip("239.1.2.3"));
	assert_int_equal(cfg->realtime, 0);
	assert_int_equal(cfg->flow_max, 16777216);
	assert_int_equal(cfg->workers, 16);
	assert_int_equal(cfg->tcp_established_ms, 3600000);
	assert_int_equal(cfg->tcp_syn_ms, 30000);
	assert_int_equal(cfg->tcp_fin_ms, 120000);
	assert_int_equal(cfg->udp_ms, 45000);
	assert_int_equal(cfg->arp_refresh_ms, 100);
	/* " ;" starts a comment; '#' or ';' without a blank in front is part of the value. */
	assert_string_equal(cfg->notify_master, "/usr/local/bin/notify master");
	assert_string_equal(cfg->notify_backup, "/usr/local/bin/notify \"backup#1\"");
	assert_string_equal(cfg->notify_fault, "logger -t dsrlb fault;now");
	assert_int_equal(cfg->notify_timeout_ms, 600000);
	assert_string_equal(cfg->metrics_listen, "127.0.0.1:9810");
	assert_int_equal(cfg->metrics_addr.ss_family, AF_INET);
	assert_int_equal(((struct sockaddr_in *)&cfg->metrics_addr)->sin_port, htons(9810));
	assert_int_equal(((struct sockaddr_in *)&cfg->metrics_addr)->sin_addr.s_addr, ip("127.0.0.1"));

	assert_int_equal(cfg->n_nodes, 1);
	assert_string_equal(cfg->nodes[0].name, "only");
	assert_int_equal(cfg->nodes[0].priority, 254);

	assert_int_equal(cfg->n_services, 3);
	s = &cfg->services[0];
	assert_int_equal(s->proto, IPPROTO_UDP);
	assert_int_equal(s->port, 53);
	assert_int_equal(s->n_backends, 2);
	assert_int_equal(s->backends[0].weight, 0);
	assert_int_equal(s->backends[1].weight, 65535);
	assert_int_equal(s->check, CFG_CHECK_NONE);
	assert_int_equal(s->on_backend_down, CFG_DOWN_KEEP);
	assert_true(ipaddr_eq(&s->sorry_backend, &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), ip("10.1.0.99") } }));
	s = &cfg->services[1];
	assert_int_equal(s->proto, IPPROTO_TCP);
	assert_int_equal(s->check, CFG_CHECK_HTTP);
	assert_int_equal(s->check_interval_ms, 500);
	assert_int_equal(s->check_timeout_ms, 499);
	assert_int_equal(s->rise, 1);
	assert_int_equal(s->fall, 100);
	assert_string_equal(s->check_path, "/health?x=1#frag");
	assert_int_equal(s->check_status, 204);
	assert_string_equal(s->check_host, "www.example.com:8080");
	/* With check = none the timeout is not compared with the interval. */
	assert_int_equal(cfg->services[2].check_timeout_ms, 3600000);
	cfg_free(cfg);
}

/* metrics_listen: off by default; IPv4 and bracketed IPv6, the wildcard addresses too. */
static void test_metrics_listen(void **state)
{
	struct cfg *cfg = load_ok(CL NODE);
	const struct sockaddr_in6 *a6;

	assert_string_equal(cfg->metrics_listen, "");
	assert_int_equal(cfg->metrics_addr.ss_family, AF_UNSPEC);
	cfg_free(cfg);
	cfg = load_ok(CL "metrics_listen = 0.0.0.0:65535\n" NODE);
	assert_int_equal(cfg->metrics_addr_len, sizeof(struct sockaddr_in));
	assert_int_equal(((struct sockaddr_in *)&cfg->metrics_addr)->sin_port, htons(65535));
	cfg_free(cfg);
	cfg = load_ok(CL "metrics_listen = [::]:9810\n" NODE);
	a6 = (const struct sockaddr_in6 *)&cfg->metrics_addr;
	assert_int_equal(a6->sin6_family, AF_INET6);
	assert_int_equal(cfg->metrics_addr_len, sizeof(struct sockaddr_in6));
	assert_int_equal(a6->sin6_port, htons(9810));
	assert_true(IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr));
	cfg_free(cfg);
}

/* Groups by numeric gid (no group database entry needed) and by name; unset means nobody else. */
static void test_groups(void **state)
{
	struct cfg *cfg = load_ok(CL NODE);

	assert_false(cfg->operator_group.set);
	assert_false(cfg->status_group.set);
	cfg_free(cfg);
	cfg = load_ok(CL "operator_group = 64000\nstatus_group = root\n" NODE);
	assert_true(cfg->operator_group.set);
	assert_int_equal(cfg->operator_group.gid, 64000);
	assert_string_equal(cfg->operator_group.name, "64000");
	assert_true(cfg->status_group.set);
	assert_int_equal(cfg->status_group.gid, 0);
	assert_string_equal(cfg->status_group.name, "root");
	cfg_free(cfg);
}

static void test_fence_default(void **state)
{
	struct cfg *cfg;

	cfg = load_ok("[cluster]\ninterface=e\nkey_file=/k\nadvert_interval=10ms\n" NODE);
	assert_int_equal(cfg->fence_ms, 50);
	cfg_free(cfg);
	cfg = load_ok("[cluster]\ninterface=e\nkey_file=/k\nadvert_interval=40s\n" NODE);
	assert_int_equal(cfg->fence_ms, 160000);
	assert_int_equal(cfg->n_services, 0);
	cfg_free(cfg);
}

static void test_line_endings(void **state)
{
	static const char crlf[] = "\xef\xbb\xbf[cluster]\r\ninterface = eth0\r\nkey_file = /k\r\n"
				   "[node a]\r\naddress = 10.0.0.1\r\npriority = 7";
	struct cfg *cfg = load_ok(crlf);

	assert_string_equal(cfg->interface, "eth0");
	assert_int_equal(cfg->nodes[0].priority, 7);
	cfg_free(cfg);
}

/* One bad config each. The line the error must name carries the comment "# <-"; a case without the
 * marker expects an error about the whole file ("path: ..."). */
static const struct {
	const char *text;
	const char *msg;
} bad[] = {
	/* Syntax and structure. */
	{ "[bogus] # <-\n" CL NODE, "unknown section [bogus]" },
	{ CL "[clusterx] # <-\n" NODE, "unknown section [clusterx]" },
	{ CL "bogus_key = 1 # <-\n" NODE, "unknown key 'bogus_key' in [cluster]" },
	{ CL NODE "[service s]\nvip = 10.0.0.100\nweight = 1 # <-\n", "unknown key 'weight' in [service s]" },
	{ CL NODE "[node b]\nvip = 10.0.0.100 # <-\n", "'vip' belongs in a [service] section, not in [node b]" },
	{ CL "backend = 10.0.0.21 # <-\n" NODE, "'backend' belongs in a [service] section, not in [cluster]" },
	{ "interface = eth0 # <-\n" CL NODE, "comes before the first section" },
	{ CL "this is not a key # <-\n" NODE, "expected 'key = value' or '[section]'" },
	{ CL "= value # <-\n" NODE, "unknown key ''" },
	{ CL "[node a # <-\n", "without ']'" },
	{ "[cluster] x # <-\n", "unexpected text after ']'" },
	{ "[] # <-\n", "empty section header" },
	{ CL "[node a b] # <-\n", "one or two words" },
	{ CL "[node bad/name] # <-\n", "bad node name 'bad/name' (1 to 31 characters" },
	{ CL "[node] # <-\n", "bad node name ''" },
	{ CL "[service] # <-\n", "bad service name '' (1 to 31 characters" },
	{ CL "[node abcdefghijklmnopqrstuvwxyz012345] # <-\n",
	  "bad node name 'abcdefghijklmnopqrstuvwxyz012345'" },
	{ "[cluster x] # <-\n", "[cluster] takes no name" },
	{ CL NODE "[cluster] # <-\n", "second [cluster] section (the first is at line 1)" },
	{ CL NODE "[node a] # <-\n", "node a is already defined at line 4" },
	{ CL NODE SVC "[service s] # <-\n", "service s is already defined at line 7" },
	{ CL NODE "[node b]\naddress = 10.0.0.2\npriority = 1\n[node c] # <-\naddress = 10.0.0.3\npriority = 1\n",
	  "[node c]: more than 2 nodes in mode = pair (mode = ecmp allows 16)" },
	{ CL "mode = ecmp\n" NODE "[node b]\naddress = 10.0.0.2\n[node c]\naddress = 10.0.0.3\n[node d]\naddress = 10.0.0.4\n"
	  "[node e]\naddress = 10.0.0.5\n[node f]\naddress = 10.0.0.6\n[node g]\naddress = 10.0.0.7\n"
	  "[node h]\naddress = 10.0.0.8\n[node i]\naddress = 10.0.0.9\n[node j]\naddress = 10.0.0.10\n"
	  "[node k]\naddress = 10.0.0.11\n[node l]\naddress = 10.0.0.12\n[node m]\naddress = 10.0.0.13\n"
	  "[node n]\naddress = 10.0.0.14\n[node o]\naddress = 10.0.0.15\n[node p]\naddress = 10.0.0.16\n"
	  "[node q] # <-\n", "more than 16 nodes" },
	{ CL "mode = active # <-\n" NODE, "mode: 'active' is not one of pair, ecmp" },
	{ CL "announce_table = 254 # <-\n" NODE, "announce_table: '254' is not a routing table id" },
	{ CL "announce_table = 0 # <-\n" NODE, "announce_table: '0' is not a routing table id" },
	{ CL "drain_quiet = 5ms # <-\n" NODE, "drain_quiet: '5ms' is out of range" },
	{ CL "interface = eth1 # <-\n" NODE, "interface: already set at line 2" },
	{ "[cluster]\ninterface = # <-\n", "interface: no value" },
	{ CL "line = " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaa # <-\n", "line is too long" },
	{ CL "interface = eth0\x01 # <-\n", "control character 0x01" },
	/* Missing pieces. */
	{ "[cluster] # <-\nkey_file = /k\n" NODE, "[cluster]: missing 'interface'" },
	{ "[cluster] # <-\ninterface = eth0\n" NODE, "[cluster]: missing 'key_file'" },
	{ CL "[node a] # <-\naddress = 10.0.0.1\n", "[node a]: missing 'priority' (required in mode = pair)" },
	{ CL "[node a] # <-\npriority = 1\n" SVC, "[node a]: missing 'address'" },
	{ CL NODE "[service s] # <-\nport = 80\nbackend = 10.0.0.21\n", "[service s]: missing 'vip'" },
	{ CL NODE "[service s] # <-\nvip = 10.0.0.100\nbackend = 10.0.0.21\n", "[service s]: missing 'port'" },
	{ CL NODE "[service s] # <-\nvip = 10.0.0.100\nport = 80\n", "[service s]: missing 'backend'" },
	{ NODE SVC, "no [cluster] section" },
	{ CL SVC, "no [node] section" },
	{ "", "no [cluster] section" },
	/* [cluster] values. */
	{ "[cluster]\ninterface = averyveryverylongname # <-\n", "longer than 15 characters" },
	{ "[cluster]\ninterface = eth/0 # <-\n", "not a valid interface name" },
	{ "[cluster]\ninterface = .. # <-\n", "not a valid interface name" },
	{ CL "key_file = k2 # <-\n" NODE, "not an absolute path" },
	{ CL "key_file = /k # <-\n" NODE, "'/k' is listed twice" },
	{ CL "key_file = /k2\nkey_file = /k3 # <-\n" NODE, "at most 2 key files" },
	{ CL "operator_group = no-such-group-dsrlb # <-\n" NODE, "operator_group: unknown group 'no-such-group-dsrlb'" },
	{ CL "status_group = 4294967295 # <-\n" NODE, "status_group: '4294967295' is not a gid" },
	{ CL "status_group = 12a # <-\n" NODE, "status_group: unknown group '12a'" },
	{ CL "operator_group = 1\noperator_group = 2 # <-\n" NODE, "operator_group: already set at line 4" },
	{ CL "metrics_listen = 127.0.0.1 # <-\n" NODE, "metrics_listen: '127.0.0.1' is not ADDRESS:PORT" },
	{ CL "metrics_listen = 127.0.0.1:0 # <-\n" NODE, "is not ADDRESS:PORT" },
	{ CL "metrics_listen = 127.0.0.1:65536 # <-\n" NODE, "is not ADDRESS:PORT" },
	{ CL "metrics_listen = :9810 # <-\n" NODE, "is not ADDRESS:PORT" },
	{ CL "metrics_listen = localhost:9810 # <-\n" NODE, "is not ADDRESS:PORT" },
	{ CL "metrics_listen = ::1:9810 # <-\n" NODE, "is not ADDRESS:PORT" },
	{ CL "metrics_listen = [::1]9810 # <-\n" NODE, "is not ADDRESS:PORT" },
	{ CL "metrics_listen = [10.0.0.1]:9810 # <-\n" NODE, "is not ADDRESS:PORT" },
	{ CL "metrics_listen = 10.0.0.1:+80 # <-\n" NODE, "is not ADDRESS:PORT" },
	{ CL "advert_interval = 4ms # <-\n" NODE, "'4ms' is out of range (5ms..40s)" },
	{ CL "advert_interval = 41s # <-\n" NODE, "out of range (5ms..40s)" },
	{ CL "advert_interval = 1x # <-\n" NODE, "'1x' is not a duration" },
	{ CL NODE SVC "persistence = sticky # <-\n", "persistence: 'sticky' is not one of none, client" },
	{ CL "persistence_timeout = 500ms # <-\n" NODE, "persistence_timeout: '500ms' is out of range (1s..168h)" },
	{ CL "stop_timeout = 3 # <-\n" NODE, "stop_timeout: '3' has no unit: did you mean 3s?" },
	{ CL "advert_interval = 100 # <-\n" NODE, "advert_interval: '100' has no unit: did you mean 100ms?" },
	{ CL "advert_interval = -100ms # <-\n" NODE, "not a duration" },
	{ CL "preempt = maybe # <-\n" NODE, "'maybe' is neither yes nor no" },
	{ CL "realtime = YES # <-\n" NODE, "neither yes nor no" },
	{ CL "preempt_delay = 2h # <-\n" NODE, "out of range (0..1h)" },
	{ CL "garp_count = 0 # <-\n" NODE, "garp_count: '0' is not a number in 1..100" },
	{ CL "garp_count = 101 # <-\n" NODE, "not a number in 1..100" },
	{ CL "garp_refresh = 500ms # <-\n" NODE, "out of range (0 or 1s..24h)" },
	{ CL "fence_timeout = 40ms # <-\n" NODE, "out of range (50ms..10m)" },
	{ CL "fence_timeout = 150ms # <-\n" NODE, "shorter than two advert_intervals (200ms)" },
	{ CL "fence_timeout = 1s # <-\nadvert_interval = 1s\n" NODE, "shorter than two advert_intervals" },
	{ CL "lbd_timeout = 0 # <-\n" NODE, "out of range (50ms..10m)" },
	{ CL "heartbeat_port = 0 # <-\n" NODE, "not a number in 1..65535" },
	{ CL "sync_port = 65536 # <-\n" NODE, "not a number in 1..65535" },
	{ CL "sync_port = 8112 # <-\n" NODE, "heartbeat_port and sync_port are both 8112" },
	{ CL "heartbeat_port = 8113 # <-\n" NODE, "heartbeat_port and sync_port are both 8113" },
	{ CL "multicast = 10.0.0.1 # <-\n" NODE, "not an IPv4 multicast group (224.0.0.0/4)" },
	{ CL "multicast = 240.0.0.1 # <-\n" NODE, "not an IPv4 multicast group" },
	{ CL "flow_max = 1023 # <-\n" NODE, "not a number in 1024..16777216" },
	{ CL "flow_max = 0x1000 # <-\n" NODE, "not a number" },
	{ CL "workers = 17 # <-\n" NODE, "not a number in 1..16" },
	{ CL "workers = +1 # <-\n" NODE, "not a number in 1..16" },
	{ CL "tcp_established_timeout = 500ms # <-\n" NODE, "out of range (1s..168h)" },
	{ CL "udp_timeout = 4294967296 # <-\n" NODE, "not a duration" },
	{ CL "arp_refresh = 10ms # <-\n" NODE, "out of range (100ms..1h)" },
	{ CL "notify_timeout = 0 # <-\n" NODE, "out of range (100ms..10m)" },
	{ CL "user = dsrlb-no-such-user # <-\n" NODE, "user: no such user 'dsrlb-no-such-user'" },
	{ CL "user = root:dsrlb-no-such-group # <-\n" NODE, "user: no such group 'dsrlb-no-such-group'" },
	{ CL "user = 4000000 # <-\n" NODE, "user: uid 4000000 has no account here: give its group too (4000000:GID)" },
	{ CL "user = 4294967295:1 # <-\n" NODE, "no such user '4294967295'" },
	{ CL "user = 1:4294967295 # <-\n" NODE, "no such group '4294967295'" },
	{ CL "user = : # <-\n" NODE, "user: ':' is not USER or USER:GROUP" },
	{ CL "user = root: # <-\n" NODE, "is not USER or USER:GROUP" },
	{ CL "user = :root # <-\n" NODE, "is not USER or USER:GROUP" },
	{ CL "user = root:root:root # <-\n" NODE, "is not USER or USER:GROUP" },
	{ CL "user = root\nuser = root # <-\n" NODE, "user: already set at line 4" },
	{ CL NODE "user = root # <-\n", "'user' belongs in a [cluster] section, not in [node a]" },
	/* [node] values. */
	{ CL "[node a]\naddress = 10.0.0.256 # <-\n", "'10.0.0.256' is not an IPv4 or IPv6 address" },
	{ CL "[node a]\naddress = 224.0.0.1 # <-\n", "'224.0.0.1' is a multicast address, not a unicast address" },
	{ CL "[node a]\naddress = 0.0.0.0 # <-\n", "is an address in 0.0.0.0/8" },
	{ CL "[node a]\naddress = 255.255.255.255 # <-\n", "is a reserved or broadcast address" },
	{ CL "[node a]\naddress = 10.1 # <-\n", "not an IPv4 or IPv6 address" },
	{ CL "[node a]\naddress = lb1.example.com # <-\n", "not an IPv4 or IPv6 address" },
	{ CL "[node a]\naddress = 2001:db8::1/64 # <-\n", "not an IPv4 or IPv6 address" },
	{ CL "[node a]\naddress = fe80::1 # <-\n", "'fe80::1' is a link-local address" },
	{ CL "[node a]\naddress = 169.254.1.1 # <-\n", "'169.254.1.1' is a link-local address" },
	{ CL "[node a]\naddress = 127.0.0.1 # <-\n", "'127.0.0.1' is a loopback address" },
	{ CL "[node a]\naddress = ::1 # <-\n", "'::1' is the loopback address" },
	{ CL "[node a]\naddress = :: # <-\n", "is the unspecified address" },
	{ CL NODE "[node b] # <-\naddress = 2001:db8::12\npriority = 5\n",
	  "[node b]: address 2001:db8::12 is not of the same family as node a's (line 4)" },
	{ "[cluster]\ninterface = eth0\nkey_file = /k\nmulticast = 239.1.1.1 # <-\n"
	  "[node a]\naddress = 2001:db8::11\npriority = 100\n", "multicast: an IPv4 group, but the nodes' addresses are IPv6" },
	{ CL "[node a]\naddress = 10.0.0.1\npriority = 255 # <-\n", "not a number in 1..254" },
	{ CL "[node a]\naddress = 10.0.0.1\npriority = 0 # <-\n", "not a number in 1..254" },
	{ CL "[node a]\naddress = 10.0.0.1\npriority = 1 0 # <-\n", "'1 0' is not a number" },
	{ CL NODE "[node b]\naddress = 10.0.0.1 # <-\npriority = 5\n",
	  "address 10.0.0.1 is also node a's (line 4)" },
	/* [service] values. */
	{ CL NODE "[service s]\nvip = 10.0.0.100\nport = 0 # <-\n", "not a number in 1..65535" },
	{ CL NODE "[service s]\nprotocol = sctp # <-\n", "'sctp' is not one of tcp, udp" },
	{ CL NODE "[service s]\ncheck = icmp # <-\n", "'icmp' is not one of none, tcp, http" },
	{ CL NODE "[service s]\non_backend_down = drop # <-\n", "not one of reschedule, keep" },
	{ CL NODE "[service s]\nbackend = 10.0.0.300 # <-\n", "not an IPv4 or IPv6 address" },
	{ CL NODE "[service s]\nvip = ff02::1 # <-\n", "'ff02::1' is a multicast address" },
	{ CL NODE "[service s]\nvip = fe80::100 # <-\n", "is a link-local address" },
	{ CL NODE "[service s]\nvip = 169.254.1.100 # <-\n", "is a link-local address" },
	{ CL NODE "[service s]\nvip = 127.0.0.100 # <-\n", "is a loopback address" },
	{ CL NODE "[service s]\nbackend = 127.0.0.1 # <-\n", "is a loopback address" },
	{ CL NODE "[service s]\nvip = 2001:db8::100\nbackend = ::1 # <-\n", "is the loopback address" },
	{ CL NODE "[service s]\nvip = 2001:db8::100\nport = 80\nbackend = 2001:db8::21\nbackend = 10.0.0.21 # <-\n",
	  "backend 10.0.0.21 is IPv4 but vip 2001:db8::100 is IPv6: a service's backends are of its vip's family" },
	{ CL NODE "[service s]\nvip = 10.0.0.100\nport = 80\nbackend = 2001:db8::21 # <-\n",
	  "backend 2001:db8::21 is IPv6 but vip 10.0.0.100 is IPv4" },
	{ CL NODE "[service s]\nvip = 2001:db8::100\nport = 80\nbackend = 2001:db8::21\nsorry_backend = 10.0.0.99 # <-\n",
	  "sorry_backend and vip are of different address families" },
	{ CL NODE "[service s]\nvip = 2001:db8::100\nport = 80\nbackend = 2001:db8::21\nbackend = 2001:DB8::21 # <-\n",
	  "2001:db8::21 is already listed at line 10" },
	{ CL NODE "[service s]\nbackend = 10.0.0.21 weight=65536 # <-\n", "'65536' is not a weight" },
	{ CL NODE "[service s]\nbackend = 10.0.0.21 weight=-1 # <-\n", "not a weight" },
	{ CL NODE "[service s]\nbackend = 10.0.0.21 weight= # <-\n", "not a weight" },
	{ CL NODE "[service s]\nbackend = 10.0.0.21 wait=2 # <-\n", "unknown option 'wait=2'" },
	{ CL NODE SVC "backend = 10.0.0.21 weight=3 # <-\n", "10.0.0.21 is already listed at line 10" },
	{ CL NODE SVC "check_interval = 50ms # <-\n", "out of range (100ms..1h)" },
	{ CL NODE SVC "check_timeout = 2s # <-\n",
	  "check_timeout (2000ms) must be shorter than check_interval (2000ms)" },
	{ CL NODE SVC "check_interval = 500ms # <-\n", "must be shorter than check_interval (500ms)" },
	{ CL NODE SVC "rise = 0 # <-\n", "not a number in 1..100" },
	{ CL NODE SVC "fall = 101 # <-\n", "not a number in 1..100" },
	{ CL NODE SVC "check = http\ncheck_path = health # <-\n", "must start with '/'" },
	{ CL NODE SVC "check = http\ncheck_status = 600 # <-\n", "not a number in 100..599" },
	{ CL NODE SVC "check_path = /health # <-\n", "check_path: only used with check = http" },
	{ CL NODE SVC "check = none\ncheck_host = x # <-\n", "check_host: only used with check = http" },
	{ CL NODE SVC "sorry_backend = 10.0.0.1 # <-\n", "sorry_backend 10.0.0.1 is node a's address" },
	{ CL NODE SVC "sorry_backend = 10.0.0.100 # <-\n", "sorry_backend 10.0.0.100 is the vip of service s" },
	{ CL NODE SVC "[service t]\nvip = 10.0.0.100 # <-\nport = 80\nbackend = 10.0.0.22\n",
	  "10.0.0.100 port 80/tcp is already service s (line 7)" },
	{ CL NODE "[service s]\nvip = 10.0.0.1 # <-\nport = 80\nbackend = 10.0.0.21\n",
	  "vip 10.0.0.1 is node a's address (line 4)" },
	{ CL NODE "[service s]\nvip = 10.0.0.21 # <-\nport = 80\nbackend = 10.0.0.21\n",
	  "vip 10.0.0.21 is also a backend (line 10)" },
	{ CL NODE "[service s]\nvip = 10.0.0.100 # <-\nport = 80\nbackend = 10.0.0.21\n"
	  "[service t]\nvip = 10.0.0.101\nport = 80\nbackend = 10.0.0.100\n",
	  "vip 10.0.0.100 is also a backend (line 14)" },
	{ CL NODE "[service s]\nvip = 10.0.0.100\nport = 80\nbackend = 10.0.0.1 # <-\n",
	  "backend 10.0.0.1 is node a's address (line 4)" },
};

static int marker_line(const char *text)
{
	const char *m = strstr(text, "# <-");
	const char *c;
	int line = 1;

	if (m == NULL)
		return 0;
	for (c = text; c < m; c++)
		line += *c == '\n';
	return line;
}

/* IPv4 and IPv6 services side by side; IPv6 nodes. */
static void test_dual_stack(void **state)
{
	char err[512], a[IPADDR_STRLEN];
	struct ipaddr vips[4];
	struct cfg *cfg = load_text("[cluster]\ninterface = eth0\nkey_file = /k\n"
				    "[node a]\naddress = 2001:db8::11\npriority = 100\n"
				    "[node b]\naddress = 2001:db8::12\npriority = 50\n"
				    "[service v4]\nvip = 192.0.2.100\nport = 80\nbackend = 192.0.2.21\n"
				    "[service v6]\nvip = 2001:db8::100\nport = 80\nbackend = 2001:db8::21 weight=3\n"
				    "backend = 2001:0db8:0:0::22\nsorry_backend = 2001:db8::99\n", err, sizeof(err));

	assert_non_null(cfg);
	assert_false(ipaddr_is_v4(&cfg->nodes[0].addr));
	assert_string_equal(ipaddr_str(&cfg->nodes[1].addr, a), "2001:db8::12");
	assert_true(ipaddr_is_v4(&cfg->services[0].vip));
	assert_string_equal(ipaddr_str(&cfg->services[1].vip, a), "2001:db8::100");
	assert_string_equal(ipaddr_str(&cfg->services[1].backends[1].addr, a), "2001:db8::22");
	assert_int_equal(cfg->services[1].backends[0].weight, 3);
	assert_string_equal(ipaddr_str(&cfg->services[1].sorry_backend, a), "2001:db8::99");
	assert_true(cfg_has_ipv6(cfg));
	assert_int_equal(cfg_vips(cfg, vips, 4), 2);
	assert_string_equal(ipaddr_str(&vips[1], a), "2001:db8::100");
	cfg_free(cfg);
}

static void test_errors(void **state)
{
	char err[512], want[256];
	size_t i;
	int line;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cfg *cfg = load_text(bad[i].text, err, sizeof(err));

		if (cfg != NULL)
			fail_msg("case %zu accepted:\n%s", i, bad[i].text);
		line = marker_line(bad[i].text);
		if (line)
			snprintf(want, sizeof(want), "%s:%d: ", tpath, line);
		else
			snprintf(want, sizeof(want), "%s: ", tpath);
		if (strncmp(err, want, strlen(want)) != 0 || strstr(err, bad[i].msg) == NULL)
			fail_msg("case %zu: got \"%s\", want \"%s...%s\"", i, err, want, bad[i].msg);
	}
}

/* `user`: a name or a number, optionally with a group (name or number); unset means the default. */
static void test_user(void **state)
{
	static const struct {
		const char *val;
		long uid, gid;          /* -1: from the user database entry of `name` */
		const char *name;
	} ok[] = {
		{ "root", 0, 0, NULL },
		{ "0", 0, 0, NULL },
		{ "root:0", 0, 0, NULL },
		{ "0:root", 0, 0, NULL },
		{ "nobody", -1, -1, "nobody" },
		{ "nobody:0", -1, 0, "nobody" },
		{ "65534", 65534, -1, "nobody" },
		{ "4000000:4000001", 4000000, 4000001, NULL },
		{ "4294967294:4294967294", 4294967294L, 4294967294L, NULL },
	};
	char text[512];
	struct cfg *cfg = load_ok(CL NODE);

	assert_string_equal(cfg->user, "");
	cfg_free(cfg);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		const struct passwd *pw = ok[i].name ? getpwnam(ok[i].name) : NULL;

		if (ok[i].name && !pw) {
			print_message("no user %s here: case %s skipped\n", ok[i].name, ok[i].val);
			continue;
		}
		snprintf(text, sizeof(text), CL "user = %s\n" NODE, ok[i].val);
		cfg = load_ok(text);
		assert_string_equal(cfg->user, ok[i].val);
		assert_int_equal(cfg->uid, ok[i].uid >= 0 ? (uid_t)ok[i].uid : pw->pw_uid);
		assert_int_equal(cfg->gid, ok[i].gid >= 0 ? (gid_t)ok[i].gid : pw->pw_gid);
		cfg_free(cfg);
	}
}

static void test_missing_file(void **state)
{
	char err[512], path[200];

	snprintf(path, sizeof(path), "%s/nonexistent.conf", tmpdir);
	assert_null(cfg_load(path, err, sizeof(err)));
	assert_string_equal(err + strlen(path), ": No such file or directory");
	assert_memory_equal(err, path, strlen(path));

	assert_null(cfg_load(tmpdir, err, sizeof(err)));
	assert_non_null(strstr(err, "Is a directory"));
}

/* Error text must stay inside small buffers, and NULL is allowed when the caller only wants a yes/no. */
static void test_small_err_buffer(void **state)
{
	char err[8];

	memset(err, 'x', sizeof(err));
	assert_null(load_text(CL "bogus = 1\n", err, 5));
	assert_int_equal(err[4], '\0');
	assert_int_equal(err[5], 'x');
	assert_null(load_text(CL "bogus = 1\n", NULL, 0));
}

static char *make_text(size_t cap)
{
	char *t = malloc(cap);

	assert_non_null(t);
	t[0] = '\0';
	return t;
}

static void expect_error(const char *text, size_t len, const char *msg)
{
	char err[512];
	struct cfg *cfg = load_bytes(text, len, err, sizeof(err));

	assert_null(cfg);
	assert_int_equal(strncmp(err, tpath, strlen(tpath)), 0);
	if (msg && strstr(err, msg) == NULL)
		fail_msg("got \"%s\", want \"%s\"", err, msg);
}

static void test_hostile(void **state)
{
	static const char alphabet[] = "[]=#; \t\nabcnode service cluster0123456789.";
	size_t big = 100 * 1024, i, off;
	unsigned seed;
	char *t = make_text(2 * 1024 * 1024);
	struct cfg *cfg;

	/* Random bytes: a NUL or control character shows it is no text file. */
	for (seed = 1; seed <= 50; seed++) {
		srandom(seed);
		for (i = 0; i < 4096; i++)
			t[i] = (char)(random() & 0xff);
		expect_error(t, 4096, NULL);
	}
	/* Random text made of the syntax's own characters. */
	for (seed = 1; seed <= 200; seed++) {
		srandom(seed);
		for (i = 0; i < 4096; i++)
			t[i] = alphabet[random() % (sizeof(alphabet) - 1)];
		cfg = load_bytes(t, 4096, NULL, 0);
		cfg_free(cfg);
	}
	expect_error("[cluster]\ninterface = eth0\0x\n", 29, "control character 0x00");

	/* A 100 KB line: an error unless it is a comment. */
	memset(t, 'a', big);
	expect_error(t, big, ":1: line is too long");
	strcpy(t, CL "interface = ");
	off = strlen(t);
	memset(t + off, 'a', big);
	expect_error(t, off + big, ":4: line is too long");
	strcpy(t, "# ");
	memset(t + 2, 'c', big);
	strcpy(t + 2 + big, "\n" CL "key_file = /k2 #");
	off = strlen(t);
	memset(t + off, 'c', big);
	strcpy(t + off + big, "\n" NODE);
	cfg = load_ok(t);
	assert_int_equal(cfg->n_key_files, 2);
	cfg_free(cfg);

	/* 10 000 sections of every kind. */
	for (t[0] = '\0', off = 0, i = 0; i < 10000; i++)
		off += (size_t)sprintf(t + off, "[service s%zu]\n", i);
	expect_error(t, off, ":1: [service s0]: missing 'vip'");
	for (t[0] = '\0', off = 0, i = 0; i < 10000; i++)
		off += (size_t)sprintf(t + off, CL);
	expect_error(t, off, ":4: second [cluster] section");
	for (t[0] = '\0', off = 0, i = 0; i < 10000; i++)
		off += (size_t)sprintf(t + off, "[x%zu]\n", i);
	expect_error(t, off, ":1: unknown section [x0]");
	off = (size_t)sprintf(t, CL);
	for (i = 0; i < 10000; i++)
		off += (size_t)sprintf(t + off, "[node n%zu]\naddress = 10.9.%zu.%zu\npriority = 9\n", i,
				       i / 250, i % 250 + 1);
	expect_error(t, off, ":52: more than 16 nodes");
	off = (size_t)sprintf(t, CL NODE);
	for (i = 0; i < 10000; i++)
		off += (size_t)sprintf(t + off, "[service s%zu]\nvip = 10.8.0.1\nport = %zu\nbackend = 10.7.0.1\n",
				       i, i + 1);
	expect_error(t, off, ":263: more than 64 services");
	off = (size_t)sprintf(t, CL NODE "[service s]\nvip = 10.8.0.1\nport = 1\n");
	for (i = 0; i < 100; i++)
		off += (size_t)sprintf(t + off, "backend = 10.7.0.%zu\n", i + 1);
	expect_error(t, off, ":74: backend: more than 64 backends");

	/* Empty, comments only, and files that miss whole sections. */
	expect_error("", 0, "no [cluster] section");
	expect_error("\n\n# nothing\n   ; here\n", strlen("\n\n# nothing\n   ; here\n"), "no [cluster] section");
	expect_error(NODE SVC, strlen(NODE SVC), "no [cluster] section");
	expect_error(CL, strlen(CL), "no [node] section");
	expect_error(CL SVC, strlen(CL SVC), "no [node] section");

	/* Larger than any config: refused before parsing. */
	memset(t, '#', 1024 * 1024 + 1);
	expect_error(t, 1024 * 1024 + 1, "larger than");
	free(t);
}

static void test_duration(void **state)
{
	static const struct {
		const char *s;
		uint32_t ms;
	} good[] = {
		{ "0", 0 }, { "0ms", 0 }, { "0s", 0 }, { "100", 100 }, { "100ms", 100 }, { "2s", 2000 },
		{ "1m", 60000 }, { "1h", 3600000 }, { "007s", 7000 }, { "4294967295", 4294967295u },
		{ "4294967295ms", 4294967295u }, { "4294967s", 4294967000u }, { "71582m", 4294920000u },
		{ "1193h", 4294800000u },
	};
	static const char *const nope[] = {
		"", "-1", "-0", "+1", " 1", "1 ", "1 s", "1.5s", "1S", "1sec", "1d", "ms", "s", "0x10",
		"4294967296", "4294968s", "71583m", "1194h", "99999999999999999999999999", "1ms1", "1\n",
	};
	uint32_t v;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 12345;
		if (cfg_parse_duration_ms(good[i].s, &v) != 0)
			fail_msg("'%s' rejected", good[i].s);
		assert_int_equal(v, good[i].ms);
	}
	for (i = 0; i < sizeof(nope) / sizeof(nope[0]); i++) {
		v = 12345;
		if (cfg_parse_duration_ms(nope[i], &v) == 0)
			fail_msg("'%s' accepted as %u", nope[i], v);
		assert_int_equal(v, 12345);
	}
	errno = 0;
	assert_int_equal(cfg_parse_duration_ms("4294967296", &v), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(cfg_parse_duration_ms("12parsecs", &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(cfg_parse_duration_ms(NULL, &v), -1);
}

static void test_digest(void **state)
{
	char text[] = EXAMPLE "# comment A\n";
	uint8_t first[CFG_DIGEST_LEN];
	struct cfg *cfg;

	cfg = load_ok(text);
	memcpy(first, cfg->digest, sizeof(first));
	cfg_free(cfg);

	cfg = load_ok(text);
	assert_memory_equal(cfg->digest, first, sizeof(first));
	cfg_free(cfg);

	/* One byte in a comment: the same config, but not the same file. */
	text[strlen(text) - 2] = 'B';
	cfg = load_ok(text);
	assert_memory_not_equal(cfg->digest, first, sizeof(first));
	cfg_free(cfg);
}

static int addr_is_local(const char *s)
{
	struct ifaddrs *ifa, *i;
	uint32_t a = ip(s);
	int found = 0;

	assert_int_equal(getifaddrs(&ifa), 0);
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == a)
			found = 1;
	freeifaddrs(ifa);
	return found;
}

/* A usable IPv4 address of this machine (not loopback) into buf; 0 when it has none. */
static int local_usable_v4(char *buf, size_t len)
{
	struct ifaddrs *ifa, *i;
	int found = 0;

	assert_int_equal(getifaddrs(&ifa), 0);
	for (i = ifa; i && !found; i = i->ifa_next) {
		struct ipaddr a;
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || ipaddr_from_sockaddr(i->ifa_addr, &a, NULL) < 0 ||
		    ipaddr_unusable(&a))
			continue;
		found = inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf, (socklen_t)len) != NULL;
	}
	freeifaddrs(ifa);
	if (!found)
		print_message("no usable IPv4 address on this machine: finding our node by local address not tested\n");
	return found;
}

static void test_find_node(void **state)
{
	char here[INET_ADDRSTRLEN];
	char err[512];
	struct cfg *cfg = load_ok(EXAMPLE);
	const struct cfg_node *self;

	self = cfg_find_node(cfg, "lb2", err, sizeof(err));
	assert_ptr_equal(self, &cfg->nodes[1]);
	assert_ptr_equal(cfg_peer(cfg, self), &cfg->nodes[0]);
	assert_ptr_equal(cfg_peer(cfg, &cfg->nodes[0]), &cfg->nodes[1]);
	assert_null(cfg_peer(cfg, NULL));

	assert_null(cfg_find_node(cfg, "lb3", err, sizeof(err)));
	assert_non_null(strstr(err, "no node named 'lb3'"));
	assert_non_null(strstr(err, "lb1 192.0.2.11, lb2 192.0.2.12"));
	cfg_free(cfg);

	/* By local address. */
	if (!addr_is_local("203.0.113.251") && !addr_is_local("203.0.113.252")) {
		cfg = load_ok("[cluster]\ninterface = eth0\nkey_file = /k\n"
			      "[node x]\naddress = 203.0.113.251\npriority = 1\n"
			      "[node y]\naddress = 203.0.113.252\npriority = 2\n");
		assert_null(cfg_find_node(cfg, NULL, err, sizeof(err)));
		assert_non_null(strstr(err, "no node's address is on a local interface"));
		assert_non_null(strstr(err, "x 203.0.113.251, y 203.0.113.252"));
		cfg_free(cfg);
	}
	/* Loopback is no node address: one of the machine's usable addresses, if it has one. */
	if (local_usable_v4(here, sizeof(here)) && !addr_is_local("203.0.113.252")) {
		char text[512];
		snprintf(text, sizeof(text), "[cluster]\ninterface = eth0\nkey_file = /k\n"
			 "[node far]\naddress = 203.0.113.252\npriority = 1\n"
			 "[node here]\naddress = %s\npriority = 2\n", here);
		cfg = load_ok(text);
		self = cfg_find_node(cfg, NULL, err, sizeof(err));
		assert_ptr_equal(self, &cfg->nodes[1]);
		assert_ptr_equal(cfg_peer(cfg, self), &cfg->nodes[0]);
		cfg_free(cfg);
	}

	/* A one-node cluster has no peer. */
	cfg = load_ok(CL NODE);
	assert_null(cfg_peer(cfg, &cfg->nodes[0]));
	cfg_free(cfg);
}

/* The shipped example parses. */
static void test_example_file(void **state)
{
	char path[PATH_MAX], err[512];
	const char *slash = strrchr(__FILE__, '/');
	struct cfg *cfg;

	/* __FILE__ is tests/unit/test_config.c relative to the top of the tree. */
	snprintf(path, sizeof(path), "%.*s/../../examples/dsrlb.conf", (int)(slash - __FILE__), __FILE__);
	cfg = cfg_load(path, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->interface, "eth0");
	assert_int_equal(cfg->n_nodes, 2);
	assert_true(ipaddr_eq(&cfg->nodes[0].addr, &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), ip("192.0.2.11") } }));
	assert_true(ipaddr_eq(&cfg->nodes[1].addr, &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), ip("192.0.2.12") } }));
	assert_int_equal(cfg->n_services, 1);
	assert_true(ipaddr_eq(&cfg->services[0].vip, &(struct ipaddr){ .w = { 0, 0, htonl(0xffff), ip("192.0.2.100") } }));
	assert_int_equal(cfg->services[0].n_backends, 3);
	assert_int_equal(cfg->services[0].backends[1].weight, 2);
	cfg_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_metrics_listen),
		cmocka_unit_test(test_fence_default),
		cmocka_unit_test(test_line_endings),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_dual_stack),
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_small_err_buffer),
		cmocka_unit_test(test_ecmp),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_find_node),
		cmocka_unit_test(test_example_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
