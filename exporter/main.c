/* dsrlb-exporter: serves Prometheus metrics of this node's lbd and vrrpd (docs/metrics.md). A separate,
 * unprivileged process: on each scrape it asks the daemons over their control sockets, as `lbctl status`
 * does, so the packet path is untouched and a slow or hostile scraper costs only this process. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "scrape.h"
#include "startup.h"

#define EXPORTER_TIMEOUT_MS 1000   /* a daemon's answer to a status request, per scrape */

struct exporter {
	struct ev_loop *loop;
	struct http_server *http;
	struct scrape *scrape;
	ev_signal sigterm, sigint;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: dsrlb-exporter [-c FILE] [--listen ADDRESS:PORT] [--run-dir DIR] [--timeout DURATION] [-d]\n"
		"       dsrlb-exporter --version\n"
		"  -c, --config FILE     cluster config; its metrics_listen says where to listen\n"
		"                        (default " STARTUP_DEFAULT_CONFIG ")\n"
		"      --listen A:P      listen here instead (the config is then not read)\n"
		"      --run-dir DIR     directory of the daemons' control sockets (default " STARTUP_DEFAULT_RUN_DIR ")\n"
		"      --timeout D       how long a scrape waits for each daemon (default 1s; 10ms..10s)\n"
		"  -d, --debug           debug logging\n"
		"Serves GET /metrics (Prometheus text format 0.0.4); logs to stderr. Run it as an unprivileged\n"
		"user in the config's status_group (or as the daemons' user): docs/metrics.md.\n");
}

static void exporter_scraped(void *arg, const char *body, size_t len)
{
	struct exporter *e = arg;

	http_server_answer(e->http, body, len);
}

static void exporter_want(void *arg)
{
	struct exporter *e = arg;

	scrape_request(e->scrape);
}

static void exporter_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_info("signal %d: leaving", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'L' },
		{ "run-dir", required_argument, NULL, 'R' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cfg_path = STARTUP_DEFAULT_CONFIG, *run_dir = STARTUP_DEFAULT_RUN_DIR, *listen_at = NULL;
	uint32_t timeout_ms = EXPORTER_TIMEOUT_MS;
	struct sockaddr_storage addr;
	socklen_t addr_len = 0;
	struct exporter e = { 0 };
	int o, debug = 0;

	while ((o = getopt_long(argc, argv, "c:dhV", opts, NULL)) != -1) {
		switch (o) {
		case 'c': cfg_path = optarg; break;
		case 'L': listen_at = optarg; break;
		case 'R': run_dir = optarg; break;
		case 'T':
			if (cfg_parse_duration_ms(optarg, &timeout_ms) < 0 || timeout_ms < 10 || timeout_ms > 10000) {
				fprintf(stderr, "dsrlb-exporter: --timeout %s: not a duration in 10ms..10s\n", optarg);
				return 2;
			}
			break;
		case 'd': debug = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("dsrlb-exporter (dsrlb) %s\n", DSRLB_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("dsrlb-exporter", 1, debug);
	if (listen_at) {
		if (cfg_parse_listen(listen_at, &addr, &addr_len) < 0) {
			fprintf(stderr, "dsrlb-exporter: --listen %s: not ADDRESS:PORT (like 127.0.0.1:9810 or [::]:9810)\n",
				listen_at);
			return 2;
		}
	} else {
		char err[512];
		struct cfg *cfg = cfg_load(cfg_path, err, sizeof(err));
		if (!cfg) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		if (!cfg->metrics_listen[0]) {
			fprintf(stderr, "%s: metrics_listen is not set in [cluster]: metrics are off (docs/metrics.md)\n",
				cfg_path);
			cfg_free(cfg);
			return 1;
		}
		addr = cfg->metrics_addr;
		addr_len = cfg->metrics_addr_len;
		listen_at = strdupa(cfg->metrics_listen);
		cfg_free(cfg);
	}
	if (geteuid() == 0)
		log_warn("running as root: it needs no privilege; run it as a user in status_group (docs/metrics.md)");

	signal(SIGPIPE, SIG_IGN);
	e.loop = EV_DEFAULT;
	if (!(e.scrape = scrape_create(e.loop, run_dir, timeout_ms, exporter_scraped, &e)))
		fatal("out of memory");
	if (!(e.http = http_server_create(e.loop, (struct sockaddr *)&addr, addr_len, exporter_want, &e))) {
		fprintf(stderr, "dsrlb-exporter: cannot listen on %s\n", listen_at);
		scrape_destroy(e.scrape);
		return 1;
	}
	ev_signal_init(&e.sigterm, exporter_signal_cb, SIGTERM);
	ev_signal_init(&e.sigint, exporter_signal_cb, SIGINT);
	ev_signal_start(e.loop, &e.sigterm);
	ev_signal_start(e.loop, &e.sigint);
	log_info("serving http://%s/metrics for the daemons in %s (each asked within %u ms)", listen_at, run_dir,
		 timeout_ms);
	ev_run(e.loop, 0);
	http_server_destroy(e.http);
	scrape_destroy(e.scrape);
	return 0;
}
