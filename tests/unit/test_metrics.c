/* Unit tests for the exporter without daemons or sockets: the text format (escaping, state sets, seconds
 * from milliseconds), the metrics of a full lbd and vrrpd status (every family once, with HELP and TYPE,
 * its samples together; every Counters field rendered; a daemon that did not answer leaves dsrlb_up 0),
 * every family documented in docs/metrics.md, and the HTTP request parser on good requests and garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <limits.h>

#include "exporter/http.h"
#include "exporter/metrics.h"
#include "exporter/prom.h"

static char *render(const struct metrics_input *in, size_t *len)
{
	struct prom m;

	prom_init(&m);
	metrics_render(&m, in);
	return prom_take(&m, len);
}

static void test_escaping(void **state)
{
	static const char *const states[] = { "up", "down", NULL };
	struct prom m;
	size_t len;
	char *t;

	prom_init(&m);
	prom_family(&m, "x", "gauge", "help");
	prom_u64(&m, PROM_L("a", "q\"b\\s\nn"), 7);
	prom_ms(&m, NULL, 1234);
	prom_ms(&m, PROM_L("a", "z"), 5);
	prom_stateset(&m, PROM_L("b", "1"), "state", states, "down");
	prom_stateset(&m, NULL, "state", states, "new");
	t = prom_take(&m, &len);
	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	assert_string_equal(t, "# HELP x help\n# TYPE x gauge\n"
			    "x{a=\"q\\\"b\\\\s\\nn\"} 7\n"
			    "x 1.234\n"
			    "x{a=\"z\"} 0.005\n"
			    "x{b=\"1\",state=\"up\"} 0\nx{b=\"1\",state=\"down\"} 1\n"
			    "x{state=\"up\"} 0\nx{state=\"down\"} 0\nx{state=\"new\"} 1\n");
	free(t);
}

/* Every field of lbd's Counters has a family (or is one of the control-socket fields rendered with
 * vrrpd's): a field added to the proto fails here until it is given a name and a line in docs/metrics.md. */
static void test_every_counter(void **state)
{
	const ProtobufCMessageDescriptor *d = &dsrlb__counters__descriptor;
	const char *label, *value, *fam;

	for (unsigned i = 0; i < d->n_fields; i++) {
		fam = metrics_counter_family(d->fields[i].name, &label, &value);
		if (!fam)
			fail_msg("Counters.%s has no metric family (exporter/metrics.c, metrics_ctrs)", d->fields[i].name);
		if (!fam[0])
			assert_memory_equal(d->fields[i].name, "ctl_", 4);
		else
			assert_true(strlen(fam) > 6 && !strcmp(fam + strlen(fam) - 6, "_total"));
	}
	assert_null(metrics_counter_family("no_such_field", &label, &value));
}

/* The families of the text, each opened once and its samples right after it. */
static void check_families(const char *t)
{
	char seen[400][96];
	size_t n = 0;
	const char *line = t;
	char fam[96] = "";

	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t len;
		assert_non_null(eol);
		len = (size_t)(eol - line);
		if (!strncmp(line, "# HELP ", 7)) {
			size_t k = strcspn(line + 7, " ");
			assert_true(k < sizeof(fam));
			memcpy(fam, line + 7, k);
			fam[k] = '\0';
			for (size_t i = 0; i < n; i++)
				if (!strcmp(seen[i], fam))
					fail_msg("family %s opened twice", fam);
			assert_true(n < 400);
			strcpy(seen[n++], fam);
			assert_memory_equal(fam, "dsrlb_", 6);
		} else if (!strncmp(line, "# TYPE ", 7)) {
			assert_memory_equal(line + 7, fam, strlen(fam));
		} else {
			/* A sample of the open family: its name, then labels or the value. */
			assert_true(fam[0]);
			assert_true(len > strlen(fam) && !memcmp(line, fam, strlen(fam)));
			assert_true(line[strlen(fam)] == '{' || line[strlen(fam)] == ' ');
		}
		line = eol + 1;
	}
}

/* Each family of the text is named, in backquotes, in docs/metrics.md. */
static void check_documented(const char *t)
{
	char path[PATH_MAX], *doc, name[128];
	const char *slash = strrchr(__FILE__, '/');
	FILE *f;
	long n;

	/* __FILE__ is tests/unit/test_metrics.c relative to the top of the tree. */
	snprintf(path, sizeof(path), "%.*s/../../docs/metrics.md", (int)(slash - __FILE__), __FILE__);
	assert_non_null(f = fopen(path, "r"));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	assert_non_null(doc = calloc(1, (size_t)n + 1));
	assert_int_equal(fread(doc, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	for (const char *p = strstr(t, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
		size_t k = strcspn(p + 7, " ");
		snprintf(name, sizeof(name), "`%.*s`", (int)k, p + 7);
		if (!strstr(doc, name))
			fail_msg("%s is not in docs/metrics.md", name);
	}
	free(doc);
}

static void test_full_status(void **state)
{
	Dsrlb__Counters ctr = DSRLB__COUNTERS__INIT;
	Dsrlb__Backend b1 = DSRLB__BACKEND__INIT, b2 = DSRLB__BACKEND__INIT, sorry = DSRLB__BACKEND__INIT;
	Dsrlb__Backend *bes[] = { &b1, &b2 };
	Dsrlb__Backend b6 = DSRLB__BACKEND__INIT, *bes6[] = { &b6 };
	Dsrlb__Service svc = DSRLB__SERVICE__INIT, svc6 = DSRLB__SERVICE__INIT;
	Dsrlb__Service *svcs[] = { &svc, &svc6 };
	Dsrlb__SyncStatus sync = DSRLB__SYNC_STATUS__INIT;
	Dsrlb__LbdStatus st = DSRLB__LBD_STATUS__INIT;
	Dsrlb__RejectCounters rej = DSRLB__REJECT_COUNTERS__INIT;
	Dsrlb__PeerStatus peer = DSRLB__PEER_STATUS__INIT;
	Dsrlb__VrrpStatus vs = DSRLB__VRRP_STATUS__INIT;
	uint8_t digest[4] = { 0xde, 0xad, 0xbe, 0xef };
	struct metrics_input in = { .lbd = &st, .vrrpd = &vs, .lbd_seconds = 0.0015, .vrrpd_seconds = 0.25 };
	size_t len;
	char *t;

	ctr.forwarded = 1000;
	ctr.tx_bytes = 64000;
	ctr.drop_no_backend = 3;
	ctr.ring_drops = 2;
	ctr.ctl_refused = 9;
	ctr.drop_ipv6_ext = 6;
	ctr.unsolicited_na_sent = 7;
	b1.address = "192.0.2.21"; b1.mac = "02:d5:c0:00:02:15"; b1.weight = 1; b1.healthy = 1;
	b1.forwarded = 600; b1.flows = 4; b1.state = "up"; b1.checks = 10;
	b2.address = "192.0.2.22"; b2.mac = ""; b2.weight = 2; b2.state = "no-mac"; b2.forwarded = 400;
	sorry.address = "192.0.2.99"; sorry.mac = ""; sorry.state = "down";
	svc.name = "web"; svc.vip = "192.0.2.100"; svc.port = 80; svc.protocol = "tcp";
	svc.n_backends = 2; svc.backends = bes; svc.forwarded = 1000; svc.sorry_backend = &sorry;
	/* IPv6: addresses are label text like any other (RFC 5952, no brackets). */
	b6.address = "2001:db8::21"; b6.mac = "02:d5:c0:00:02:15"; b6.weight = 1; b6.healthy = 1; b6.state = "up";
	b6.forwarded = 5; b6.answers_vip_arp = 1;
	svc6.name = "web6"; svc6.vip = "2001:db8::100"; svc6.port = 443; svc6.protocol = "tcp";
	svc6.n_backends = 1; svc6.backends = bes6; svc6.forwarded = 5;
	sync.state = "established"; sync.bulk_state = "done"; sync.last_lag_ms = 3; sync.lag_p99_ms = 12;
	sync.sent_flows = 77;
	st.node = "lb1"; st.interface = "eth0"; st.mac = "02:d5:c0:00:02:0b"; st.active = 1; st.mode_reason = "vrrpd";
	st.uptime_ms = 61500; st.flows = 4; st.flow_max = 1048576; st.counters = &ctr; st.sync = &sync;
	st.n_services = 2; st.services = svcs; st.last_reload_error = "";
	st.config_digest.data = digest; st.config_digest.len = sizeof(digest);
	rej.replay = 5;
	peer.name = "lb2"; peer.state = "BACKUP"; peer.priority = 100; peer.last_heard_ms = 40;
	vs.node = "lb1"; vs.state = "MASTER"; vs.priority = 150; vs.advert_interval_ms = 100; vs.rejected = &rej;
	vs.peer = &peer; vs.transitions = 2; vs.ctl_evicted = 1;

	t = render(&in, &len);
	assert_non_null(t);
	check_families(t);
	check_documented(t);
	static const char *const want[] = {
		"dsrlb_up{daemon=\"lbd\"} 1\n",
		"dsrlb_up{daemon=\"vrrpd\"} 1\n",
		"dsrlb_exporter_query_seconds{daemon=\"vrrpd\"} 0.25\n",
		"dsrlb_build_info{version=\"" DSRLB_VERSION "\"} 1\n",
		"dsrlb_node_info{node=\"lb1\",interface=\"eth0\",mac=\"02:d5:c0:00:02:0b\"} 1\n",
		"dsrlb_active 1\n",
		"dsrlb_mode_info{reason=\"vrrpd\"} 1\n",
		"dsrlb_forwarded_frames_total 1000\n",
		"dsrlb_forwarded_bytes_total 64000\n",
		"dsrlb_dropped_frames_total{reason=\"no_backend\"} 3\n",
		"dsrlb_dropped_frames_total{reason=\"standby\"} 0\n",
		"dsrlb_ring_dropped_frames_total{reason=\"rx_ring\"} 2\n",
		"dsrlb_service_info{service=\"web\",vip=\"192.0.2.100\",port=\"80\",protocol=\"tcp\"} 1\n",
		"dsrlb_service_forwarded_frames_total{service=\"web\"} 1000\n",
		"dsrlb_service_info{service=\"web6\",vip=\"2001:db8::100\",port=\"443\",protocol=\"tcp\"} 1\n",
		"dsrlb_backend_forwarded_frames_total{service=\"web6\",backend=\"2001:db8::21\"} 5\n",
		"dsrlb_backend_answers_vip_arp{service=\"web6\",backend=\"2001:db8::21\"} 1\n",
		"dsrlb_dropped_frames_total{reason=\"ipv6_ext\"} 6\n",
		"dsrlb_unsolicited_na_sent_total 7\n",
		"dsrlb_nd_adverts_sent_total 0\n",
		"dsrlb_service_sorry_backend_info{service=\"web\",backend=\"192.0.2.99\"} 1\n",
		"dsrlb_backend_forwarded_frames_total{service=\"web\",backend=\"192.0.2.21\"} 600\n",
		"dsrlb_backend_forwarded_frames_total{service=\"web\",backend=\"192.0.2.22\"} 400\n",
		"dsrlb_backend_forwarded_frames_total{service=\"web\",backend=\"192.0.2.99\"} 0\n",
		"dsrlb_backend_flows{service=\"web\",backend=\"192.0.2.21\"} 4\n",
		"dsrlb_backend_weight{service=\"web\",backend=\"192.0.2.22\"} 2\n",
		"dsrlb_backend_mac_resolved{service=\"web\",backend=\"192.0.2.22\"} 0\n",
		"dsrlb_backend_state{service=\"web\",backend=\"192.0.2.22\",state=\"no-mac\"} 1\n",
		"dsrlb_backend_state{service=\"web\",backend=\"192.0.2.22\",state=\"up\"} 0\n",
		"dsrlb_backend_health_checks_total{service=\"web\",backend=\"192.0.2.21\"} 10\n",
		"dsrlb_sync_state{state=\"established\"} 1\n",
		"dsrlb_sync_lag_seconds 0.003\n",
		"dsrlb_sync_lag_p99_seconds 0.012\n",
		"dsrlb_sync_sent_flows_total 77\n",
		"dsrlb_vrrp_state{state=\"MASTER\"} 1\n",
		"dsrlb_vrrp_state{state=\"BACKUP\"} 0\n",
		"dsrlb_vrrp_master 1\n",
		"dsrlb_vrrp_advert_interval_seconds 0.100\n",
		"dsrlb_vrrp_transitions_total 2\n",
		"dsrlb_vrrp_heartbeats_rejected_total{reason=\"replay\"} 5\n",
		"dsrlb_vrrp_heartbeats_rejected_total{reason=\"kernel_dropped\"} 0\n",
		"dsrlb_vrrp_peer_state{peer=\"lb2\",state=\"BACKUP\"} 1\n",
		"dsrlb_vrrp_peer_last_heard_seconds{peer=\"lb2\"} 0.040\n",
		"dsrlb_uptime_seconds{daemon=\"lbd\"} 61.500\n",
		"dsrlb_config_info{daemon=\"lbd\",digest=\"deadbeef\"} 1\n",
		"dsrlb_control_refused_total{daemon=\"lbd\"} 9\n",
		"dsrlb_control_closed_total{daemon=\"vrrpd\",reason=\"evicted\"} 1\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(t, want[i]))
			fail_msg("missing: %s", want[i]);
	free(t);

	/* Neither daemon answered: dsrlb_up 0 for both, no daemon family, still valid text. */
	in = (struct metrics_input){ .lbd_seconds = 1.0, .vrrpd_seconds = 1.0 };
	t = render(&in, &len);
	assert_non_null(t);
	check_families(t);
	assert_non_null(strstr(t, "dsrlb_up{daemon=\"lbd\"} 0\n"));
	assert_non_null(strstr(t, "dsrlb_up{daemon=\"vrrpd\"} 0\n"));
	assert_null(strstr(t, "dsrlb_vrrp_master"));
	assert_null(strstr(t, "dsrlb_active"));
	free(t);
}

#define REQ(s) (s), (sizeof(s) - 1)

static void test_http_parse(void **state)
{
	char big[HTTP_MAX_REQUEST];

	assert_int_equal(http_parse_request(REQ("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")), 200);
	assert_int_equal(http_parse_request(REQ("GET /metrics HTTP/1.0\r\n\r\n")), 200);
	assert_int_equal(http_parse_request(REQ("GET /metrics?x=1 HTTP/1.1\n\n")), 200);
	/* Incomplete: wait for more. */
	assert_int_equal(http_parse_request(REQ("")), 0);
	assert_int_equal(http_parse_request(REQ("GET /metrics HTTP/1.1\r\nHost: x\r\n")), 0);
	assert_int_equal(http_parse_request(REQ("GET /metrics HTTP/1.1\r\n\r")), 0);
	/* Other resources, methods and versions. */
	assert_int_equal(http_parse_request(REQ("GET / HTTP/1.1\r\n\r\n")), 404);
	assert_int_equal(http_parse_request(REQ("GET /metricsx HTTP/1.1\r\n\r\n")), 404);
	assert_int_equal(http_parse_request(REQ("GET /metric HTTP/1.1\r\n\r\n")), 404);
	assert_int_equal(http_parse_request(REQ("POST /metrics HTTP/1.1\r\n\r\n")), 405);
	assert_int_equal(http_parse_request(REQ("GETS /metrics HTTP/1.1\r\n\r\n")), 405);
	assert_int_equal(http_parse_request(REQ("GET /metrics HTTP/2.0\r\n\r\n")), 505);
	assert_int_equal(http_parse_request(REQ("GET /metrics HTTP/1.2\r\n\r\n")), 505);
	/* Garbage. */
	assert_int_equal(http_parse_request(REQ("\r\n\r\n")), 400);
	assert_int_equal(http_parse_request(REQ("get /metrics HTTP/1.1\r\n\r\n")), 400);
	assert_int_equal(http_parse_request(REQ("GET  /metrics HTTP/1.1\r\n\r\n")), 400);
	assert_int_equal(http_parse_request(REQ("GET /metrics\r\n\r\n")), 400);
	assert_int_equal(http_parse_request(REQ("GET /met\x01rics HTTP/1.1\r\n\r\n")), 400);
	assert_int_equal(http_parse_request(REQ("GET /metrics HTTP/1.1 x\r\n\r\n")), 400);
	assert_int_equal(http_parse_request(REQ("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n")), 400);
	/* A head that does not end within the buffer. */
	memset(big, 'A', sizeof(big));
	assert_int_equal(http_parse_request(big, sizeof(big)), 431);
	assert_int_equal(http_parse_request(big, sizeof(big) - 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_every_counter),
		cmocka_unit_test(test_full_status),
		cmocka_unit_test(test_http_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
