/* Unit tests for lbd/health.c without a network: the HTTP status-line parser against hostile and
 * fragmented input, the check request and its Host header for both families, the rise/fall counter against a
 * reference model, the spread of first checks, and the reload rule that a backend whose check is switched off
 * is up again (IPv4 and IPv6 services). */
#include <arpa/inet.h>
#include <ev.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lbd/health.h"
#include "lbd/lbd.h"

#define MORE HEALTH_HTTP_MORE
#define BAD HEALTH_HTTP_BAD

static int st(const char *s)
{
	return health_http_status(s, strlen(s));
}

/* A small fixed-seed generator: the random tests are the same on every run. */
static uint32_t rng(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

static void test_status_valid(void **state)
{
	assert_int_equal(st("HTTP/1.1 200 OK\r\n"), 200);
	assert_int_equal(st("HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\n"), 404);
	assert_int_equal(st("HTTP/1.1 500 Internal Server Error\r\n"), 500);
	assert_int_equal(st("HTTP/1.1 100 Continue\r\n"), 100);
	assert_int_equal(st("HTTP/1.1 599 x"), 599);
	assert_int_equal(st("HTTP/1.9 302 "), 302);
	/* No reason phrase, with or without its space; bare LF instead of CRLF. */
	assert_int_equal(st("HTTP/1.1 200\r\n"), 200);
	assert_int_equal(st("HTTP/1.1 200 \r\n"), 200);
	assert_int_equal(st("HTTP/1.1 200\n"), 200);
	assert_int_equal(st("HTTP/1.1 204 No Content\n"), 204);
	/* The code is known once the byte after it arrived; what follows is not our business. */
	assert_int_equal(st("HTTP/1.1 200 \x01\xff garbage"), 200);
	assert_int_equal(health_http_status("HTTP/1.1 200 OK\0\0\0", 18), 200);
}

static void test_status_incomplete(void **state)
{
	static const char *full[] = { "HTTP/1.1 200 OK\r\n", "HTTP/1.0 503\r\n", "HTTP/1.1 301\n" };

	assert_int_equal(health_http_status("", 0), MORE);
	/* Every proper prefix up to the code's delimiter is "read more"; from there on, the code. */
	for (size_t k = 0; k < sizeof(full) / sizeof(full[0]); k++) {
		int code = st(full[k]);
		assert_true(code >= 100);
		for (size_t n = 0; n <= strlen(full[k]); n++)
			assert_int_equal(health_http_status(full[k], n), n < 13 ? MORE : code);
	}
	/* "HTTP/1.1 200" with nothing after it could still become "HTTP/1.1 2000": wait. */
	assert_int_equal(st("HTTP/1.1 200"), MORE);
	assert_int_equal(st("HTTP/1.1 20"), MORE);
	assert_int_equal(st("HTTP/1."), MORE);
	assert_int_equal(st("H"), MORE);
}

static void test_status_garbage(void **state)
{
	static const char *bad[] = {
		"hello world\r\n",
		"http/1.1 200 OK\r\n",          /* the version is case-sensitive (RFC 9112 section 2.3) */
		"Http/1.1 200 OK\r\n",
		"HTTP/1.1 200 OK\r\n" + 1,
		"HTTP/2 200\r\n",
		"HTTP/2.0 200 OK\r\n",
		"HTTP/0.9 200 OK\r\n",
		"HTTP/1.x 200 OK\r\n",
		"HTTP/1.1  200 OK\r\n",
		"HTTP/1.1\t200 OK\r\n",
		"HTTP/1.1 200\tOK\r\n",
		"HTTP/1.1 200OK\r\n",
		"HTTP/1.1 20 OK\r\n",
		"HTTP/1.1 2 OK\r\n",
		"HTTP/1.1 2000 OK\r\n",
		"HTTP/1.1 99999999999999999999999999999999 OK\r\n",
		"HTTP/1.1 -20 OK\r\n",
		"HTTP/1.1 +20 OK\r\n",
		"HTTP/1.1 0x1 OK\r\n",
		"HTTP/1.1 099 Low\r\n",
		"HTTP/1.1 000\r\n",
		"HTTP/1.1 600 High\r\n",
		"HTTP/1.1 999\r\n",
		"HTTP/1.1 \xb2\xb0\xb0 OK\r\n",
		" HTTP/1.1 200 OK\r\n",
		"\r\nHTTP/1.1 200 OK\r\n",
		"HTTP/1.1\r\n200 OK\r\n",
		"HTTP/1.1 \r\n",
		"SSH-2.0-OpenSSH_9.6\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (st(bad[i]) != BAD)
			fail_msg("'%s' parsed as %d", bad[i], st(bad[i]));
	}
	/* A NUL inside the code. */
	assert_int_equal(health_http_status("HTTP/1.1 2\0000 OK", 16), BAD);
	assert_int_equal(health_http_status("HTTP\0/1.1 200 OK", 16), BAD);
}

/* Whatever the bytes: the answer is BAD, MORE or a code in 100..599, and once decided, more bytes do not
 * change it, so a response read in pieces gets the verdict it would get read at once. */
static void test_status_random(void **state)
{
	static const char alphabet[] = "HTTP/1.0 123456789\r\n xX";
	uint64_t seed = 42;
	char buf[64];

	for (int round = 0; round < 200000; round++) {
		size_t len = rng(&seed) % sizeof(buf), n;
		int prev = MORE, r;

		/* Mostly near-valid lines, so that the deep states are reached. */
		memcpy(buf, "HTTP/1.1 200 OK\r\n", 17);
		for (size_t i = 0; i < len; i++) {
			uint32_t x = rng(&seed);
			if (i >= 17 || x % 4 == 0)
				buf[i] = x % 8 == 0 ? (char)(x >> 8) : alphabet[(x >> 8) % (sizeof(alphabet) - 1)];
		}
		for (n = 0; n <= len; n++) {
			r = health_http_status(buf, n);
			assert_true(r == BAD || r == MORE || (r >= 100 && r <= 599));
			if (prev != MORE)
				assert_int_equal(r, prev);
			prev = r;
		}
	}
}

static void test_request(void **state)
{
	char out[512], path[128], host[128];
	int n;

	n = health_http_request(out, sizeof(out), "/healthz", "10.0.0.11:8080");
	assert_string_equal(out, "GET /healthz HTTP/1.0\r\nHost: 10.0.0.11:8080\r\nUser-Agent: dsrlb-health\r\n"
				 "Connection: close\r\n\r\n");
	assert_int_equal(n, (int)strlen(out));
	/* Exactly fitting, and one byte short. */
	assert_int_equal(health_http_request(out, (size_t)n + 1, "/healthz", "10.0.0.11:8080"), n);
	assert_int_equal(health_http_request(out, (size_t)n, "/healthz", "10.0.0.11:8080"), -1);
	assert_int_equal(health_http_request(out, 0, "/", "h"), -1);
	/* The longest path and host the config accepts fit the probe's 512-byte buffer. */
	memset(path, 'p', 127);
	path[0] = '/';
	path[127] = 0;
	memset(host, 'h', 127);
	host[127] = 0;
	assert_true(health_http_request(out, sizeof(out), path, host) > 0);
	/* Nothing that could end the request line or forge a header. */
	assert_int_equal(health_http_request(out, sizeof(out), "healthz", "h"), -1);
	assert_int_equal(health_http_request(out, sizeof(out), "", "h"), -1);
	assert_int_equal(health_http_request(out, sizeof(out), "/a b", "h"), -1);
	assert_int_equal(health_http_request(out, sizeof(out), "/a\r\nX-Evil: 1", "h"), -1);
	assert_int_equal(health_http_request(out, sizeof(out), "/\x7f", "h"), -1);
	assert_int_equal(health_http_request(out, sizeof(out), "/\xc3\xa9", "h"), -1);
	assert_int_equal(health_http_request(out, sizeof(out), "/", ""), -1);
	assert_int_equal(health_http_request(out, sizeof(out), "/", "a\nb"), -1);
	assert_int_equal(health_http_request(out, sizeof(out), "/", "a b"), -1);
	assert_int_equal(health_http_request(out, sizeof(out), NULL, "h"), -1);
	assert_int_equal(health_http_request(out, sizeof(out), "/", NULL), -1);
}

static void test_host(void **state)
{
	struct ipaddr a4, a6;
	char out[IPADDR_PORT_STRLEN], req[512];

	assert_int_equal(ipaddr_parse("10.0.0.11", &a4), 0);
	assert_int_equal(ipaddr_parse("2001:DB8:0:0::b", &a6), 0);
	assert_int_equal(health_http_host(out, sizeof(out), &a4, 80), 9);
	assert_string_equal(out, "10.0.0.11");
	health_http_host(out, sizeof(out), &a4, 8080);
	assert_string_equal(out, "10.0.0.11:8080");
	/* RFC 3986: an IPv6 literal in brackets, with or without the port; RFC 5952 text inside. */
	assert_int_equal(health_http_host(out, sizeof(out), &a6, 80), 13);
	assert_string_equal(out, "[2001:db8::b]");
	health_http_host(out, sizeof(out), &a6, 8080);
	assert_string_equal(out, "[2001:db8::b]:8080");
	assert_int_equal(health_http_host(out, 13, &a6, 80), -1);
	assert_int_equal(health_http_host(out, 14, &a6, 80), 13);
	/* The longest IPv6 text with the longest port fits, and makes a valid request. */
	assert_int_equal(ipaddr_parse("2001:db8:1234:5678:9abc:def0:1234:5678", &a6), 0);
	assert_true(health_http_host(out, sizeof(out), &a6, 65535) > 0);
	assert_string_equal(out, "[2001:db8:1234:5678:9abc:def0:1234:5678]:65535");
	assert_true(health_http_request(req, sizeof(req), "/", out) > 0);
	assert_non_null(strstr(req, "\r\nHost: [2001:db8:1234:5678:9abc:def0:1234:5678]:65535\r\n"));
}

/* Feeds a string of results ('+' pass, '-' fail) and returns the string of verdicts after each. */
static void run_seq(struct health_state *s, const char *in, unsigned rise, unsigned fall, char *out)
{
	for (; *in; in++) {
		int up = s->up;
		int flip = health_update(s, *in == '+', rise, fall);
		assert_int_equal(flip, up != s->up);
		*out++ = s->up ? 'U' : 'D';
	}
	*out = 0;
}

static void test_rise_fall_sequences(void **state)
{
	static const struct {
		unsigned rise, fall;
		int up;
		const char *in, *out;
	} cases[] = {
		/* The defaults: down after 3 failures in a row, up after 2 passes in a row. */
		{ 2, 3, 1, "+++", "UUU" },
		{ 2, 3, 1, "---", "UUD" },
		{ 2, 3, 1, "--+--+--", "UUUUUUUU" },      /* a pass resets the failure run */
		{ 2, 3, 1, "---+-++", "UUDDDDU" },        /* a failure resets the pass run */
		{ 2, 3, 1, "---++---", "UUDDUUUD" },
		{ 2, 3, 0, "+", "D" },
		{ 2, 3, 0, "++", "DU" },
		{ 2, 3, 0, "+-+-+-", "DDDDDD" },          /* flapping never comes up */
		{ 1, 1, 1, "-+-+", "DUDU" },              /* rise = fall = 1: every result decides */
		{ 0, 0, 1, "-+-", "DUD" },                /* 0 counts as 1 */
		{ 5, 1, 1, "-++++-+++++", "DDDDDDDDDDU" },
		{ 100, 100, 1, "-", "U" },
	};
	char out[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct health_state s;
		health_state_init(&s, cases[i].up);
		run_seq(&s, cases[i].in, cases[i].rise, cases[i].fall, out);
		if (strcmp(out, cases[i].out) != 0)
			fail_msg("case %zu: rise %u fall %u %s: got %s, want %s", i, cases[i].rise, cases[i].fall,
				 cases[i].in, out, cases[i].out);
	}
}

/* Against a model that looks only at the history: the verdict flips exactly when the last `fall`
 * (or `rise`) results all disagree with it and all came after the previous flip. */
static void test_rise_fall_model(void **state)
{
	uint64_t seed = 7;
	uint8_t hist[4096];

	for (int round = 0; round < 2000; round++) {
		unsigned rise = 1 + rng(&seed) % 6, fall = 1 + rng(&seed) % 6;
		unsigned bias = rng(&seed) % 100;
		struct health_state s;
		int up = 1;
		size_t last_flip = 0;

		health_state_init(&s, 1);
		for (size_t n = 0; n < sizeof(hist); n++) {
			unsigned need;
			int flip, model = 0;

			hist[n] = rng(&seed) % 100 < bias;
			need = up ? fall : rise;
			if (n + 1 - last_flip >= need) {
				model = 1;
				for (size_t k = n + 1 - need; k <= n; k++)
					if (hist[k] == up)
						model = 0;
			}
			flip = health_update(&s, hist[n], rise, fall);
			assert_int_equal(flip, model);
			if (flip) {
				up = !up;
				last_flip = n + 1;
			}
			assert_int_equal(s.up, up);
			assert_true(s.run < (rise > fall ? rise : fall));
		}
	}
}

static void test_jitter(void **state)
{
	unsigned bucket[10] = { 0 };
	uint32_t first[64];

	assert_int_equal(health_jitter_ms(0, 0), 0);
	assert_int_equal(health_jitter_ms(4095, 1), 0);
	for (uint32_t s = 0; s < LBD_MAX_SLOTS; s++) {
		assert_true(health_jitter_ms((uint16_t)s, 100) < 100);
		assert_true(health_jitter_ms((uint16_t)s, 3600000) < 3600000);
		assert_true(health_jitter_ms((uint16_t)s, UINT32_MAX) < UINT32_MAX);
	}
	assert_true(health_jitter_ms(65535, 2000) < 2000);
	/* 64 consecutive slots at 2 s: no two first checks within 10 ms, no gap over 100 ms. */
	for (int i = 0; i < 64; i++)
		first[i] = health_jitter_ms((uint16_t)(i + 100), 2000);
	for (int i = 0; i < 64; i++)
		for (int j = i + 1; j < 64; j++) {
			uint32_t d = first[i] > first[j] ? first[i] - first[j] : first[j] - first[i];
			assert_true(d >= 10);
		}
	for (uint32_t t = 0; t < 2000; t += 100) {
		int any = 0;
		for (int i = 0; i < 64; i++)
			any |= first[i] >= t && first[i] < t + 100;
		assert_true(any);
	}
	/* All 4096 slots at 1 s: each tenth of the interval gets its share, to within 5 %. */
	for (uint32_t s = 0; s < LBD_MAX_SLOTS; s++)
		bucket[health_jitter_ms((uint16_t)s, 1000) / 100]++;
	for (int i = 0; i < 10; i++)
		assert_true(bucket[i] > 389 && bucket[i] < 431);
}

static void test_null(void **state)
{
	assert_string_equal(health_last_result(NULL, 0), "");
	assert_null(health_slot_stats(NULL, 0));
	assert_int_equal(health_waited(NULL), 0);
	health_reload(NULL);
	health_destroy(NULL);
}

/* ---- the reload glue, on a hand-built daemon context; the loop never runs, so nothing is sent ---- */

static struct lbd lb;

/* One service "web" on port 80: IPv4 (192.0.2.100, backends 192.0.2.21...) or IPv6 (2001:db8::100,
 * backends 2001:db8::21...). */
static struct cfg *mkcfg_family(enum cfg_check check, size_t n_backends, int v6)
{
	struct cfg *c = calloc(1, sizeof(*c));
	struct cfg_service *cs = &c->services[0];

	assert_non_null(c);
	c->n_services = 1;
	snprintf(cs->name, sizeof(cs->name), "web");
	assert_int_equal(ipaddr_parse(v6 ? "2001:db8::100" : "192.0.2.100", &cs->vip), 0);
	cs->port = 80;
	cs->proto = 6;
	cs->check = check;
	cs->check_interval_ms = 2000;
	cs->check_timeout_ms = 1000;
	cs->rise = 2;
	cs->fall = 3;
	snprintf(cs->check_path, sizeof(cs->check_path), "/");
	cs->check_status = 200;
	assert_int_equal(ipaddr_parse(v6 ? "2001:db8::99" : "192.0.2.99", &cs->sorry_backend), 0);
	for (size_t i = 0; i < n_backends; i++) {
		char a[64];
		snprintf(a, sizeof(a), v6 ? "2001:db8::%zx" : "192.0.2.%zu", 0x21 + i);
		assert_int_equal(ipaddr_parse(a, &cs->backends[i].addr), 0);
		cs->backends[i].weight = 1;
	}
	cs->n_backends = n_backends;
	return c;
}


static void lb_teardown(void)
{
	for (size_t i = 0; i < lb.n_services; i++)
		maglev_destroy(lb.services[i].mg);
	cfg_free(lb.cfg);
	ev_loop_destroy(lb.loop);
	memset(&lb, 0, sizeof(lb));
}

static void reload_check_off_is_up(int v6)
{
	struct health_ctx *h;
	struct lbd_service *s;

	memset(&lb, 0, sizeof(lb));
	lb.loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(lb.loop);
	assert_int_equal(dp_apply_config(&lb, mkcfg_family(CFG_CHECK_TCP, 3, v6)), 0);
	s = &lb.services[0];
	for (size_t i = 0; i < s->n_slots; i++)
		lb.slots[s->slots[i]].mac_known = 1;
	h = health_create(&lb);
	assert_non_null(h);
	/* Backends start up; nothing has been checked yet. */
	for (size_t i = 0; i < s->n_slots; i++) {
		assert_int_equal(lb.slots[s->slots[i]].healthy, 1);
		assert_string_equal(health_last_result(h, s->slots[i]), "");
		assert_int_equal(health_slot_stats(h, s->slots[i])->checks, 0);
	}
	assert_null(health_slot_stats(h, LBD_MAX_SLOTS));
	assert_string_equal(health_last_result(h, LBD_MAX_SLOTS), "");

	/* As if checks had taken one backend down; then the same config again keeps it down. */
	lb.slots[s->slots[1]].healthy = 0;
	dp_rebuild_service(&lb, s);
	assert_int_equal(s->n_usable, 2);
	assert_int_equal(dp_apply_config(&lb, mkcfg_family(CFG_CHECK_TCP, 3, v6)), 0);
	health_reload(h);
	assert_int_equal(lb.slots[s->slots[1]].healthy, 0);
	assert_int_equal(s->n_usable, 2);

	/* check = none: always up, and the table has it again. */
	assert_int_equal(dp_apply_config(&lb, mkcfg_family(CFG_CHECK_NONE, 3, v6)), 0);
	health_reload(h);
	for (size_t i = 0; i < s->n_slots; i++)
		assert_int_equal(lb.slots[s->slots[i]].healthy, 1);
	assert_int_equal(s->n_usable, 3);

	/* Back to checks, fewer backends, then destroy with timers running. */
	assert_int_equal(dp_apply_config(&lb, mkcfg_family(CFG_CHECK_HTTP, 2, v6)), 0);
	health_reload(h);
	assert_int_equal(s->n_slots, 2);
	assert_int_equal(ipaddr_is_v4(&lb.slots[s->slots[0]].addr), !v6);
	health_destroy(h);
	lb_teardown();
}

static void test_reload_check_off_is_up(void **state)
{
	reload_check_off_is_up(0);
}

static void test_reload_check_off_is_up_ipv6(void **state)
{
	reload_check_off_is_up(1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_valid),
		cmocka_unit_test(test_status_incomplete),
		cmocka_unit_test(test_status_garbage),
		cmocka_unit_test(test_status_random),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_host),
		cmocka_unit_test(test_rise_fall_sequences),
		cmocka_unit_test(test_rise_fall_model),
		cmocka_unit_test(test_jitter),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_reload_check_off_is_up),
		cmocka_unit_test(test_reload_check_off_is_up_ipv6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
