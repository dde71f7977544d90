/* One scrape: ask lbd and vrrpd for their status over their control sockets, at the same time and
 * within a deadline, and render the answers (metrics.c). Scrapes that come while one is running share
 * its result, and a result is reused for SCRAPE_REUSE_MS, so however many scrapers ask, each daemon
 * gets at most one status request per SCRAPE_REUSE_MS from the exporter. */
#ifndef DSR_SCRAPE_H
#define DSR_SCRAPE_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAPE_REUSE_MS 100

/* A scrape ended: body is the exposition text (NULL: out of memory), valid until the next call. */
typedef void (*scrape_done_fn)(void *arg, const char *body, size_t len);

struct scrape;
struct scrape *scrape_create(struct ev_loop *loop, const char *run_dir, uint32_t timeout_ms, scrape_done_fn done,
			     void *arg);
void scrape_destroy(struct scrape *s);
/* Asks for metrics: `done` runs once the running (or a new) scrape ends, at once with a recent one. */
void scrape_request(struct scrape *s);

#endif
