/* Backend health checks of lbd: a TCP connect or an HTTP GET to each backend's real address (IPv4 or
 * IPv6) and the service port, every check_interval, feeding a rise/fall counter that sets the backend's
 * `healthy` flag and rebuilds its service's Maglev table when the verdict changes. */
#ifndef DSR_HEALTH_H
#define DSR_HEALTH_H

#include <stddef.h>
#include <stdint.h>

struct lbd;
struct health_ctx;
struct ipaddr;

#define HEALTH_MAX_INFLIGHT 64          /* checks in progress at once; more wait in a FIFO queue */
#define HEALTH_RESULT_MAX 64

/* The verdict of one backend. Backends start up (see health_state_init) and change side only after
 * `fall` consecutive failures or `rise` consecutive successes. */
struct health_state {
	uint8_t up;
	uint32_t run;                   /* consecutive results that disagree with the verdict */
};

/* What lbctl status shows per backend. */
struct health_stats {
	uint64_t checks;                /* completed checks, passed or failed */
	uint64_t failures;
	uint64_t skipped;               /* rounds not run: the last one still running or waiting, or a
					 * local error (no file descriptors, no local ports) */
	uint64_t last_change_ms;        /* clock_ms() of the last verdict change; 0 = never changed */
	char last_result[HEALTH_RESULT_MAX];  /* "ok", "HTTP 500", "connection refused", "timeout", ... */
};

/* The daemon glue: create after the first dp_apply_config, reload after every successful one. */
struct health_ctx *health_create(struct lbd *l);
void health_reload(struct health_ctx *h);
void health_destroy(struct health_ctx *h);

/* "" for a slot that is not checked (free, sorry backend, or check = none). */
const char *health_last_result(const struct health_ctx *h, uint16_t slot);
/* NULL for a slot out of range; the stats of a slot that is not checked are all zero. */
const struct health_stats *health_slot_stats(const struct health_ctx *h, uint16_t slot);
uint64_t health_waited(const struct health_ctx *h);  /* rounds that waited for a free probe */

/* Pure parts, for the unit tests. */
void health_state_init(struct health_state *s, int up);
/* Feeds one check result; returns 1 when the verdict flips, 0 otherwise. rise or fall 0 counts as 1. */
int health_update(struct health_state *s, int ok, unsigned rise, unsigned fall);

#define HEALTH_HTTP_BAD  (-1)           /* not an HTTP/1.x status line: fail now */
#define HEALTH_HTTP_MORE (-2)           /* a valid prefix: read more */
/* The status code of the HTTP/1.x response starting at buf, once "HTTP/1.x NNN" and the byte after
 * the code (space, CR or LF) have arrived; HEALTH_HTTP_MORE before that, HEALTH_HTTP_BAD for
 * anything else (lowercase "http", other versions, codes outside 100..599 or not 3 digits). */
int health_http_status(const char *buf, size_t len);
/* The Host header's value when check_host is not set: the backend's address, IPv6 in brackets
 * ("[2001:db8::1]"), and ":port" unless port is 80. Its length, or -1 if it does not fit in cap. */
int health_http_host(char *out, size_t cap, const struct ipaddr *addr, uint16_t port);
/* Writes the check request into out; returns its length, or -1 if it does not fit in cap. */
int health_http_request(char *out, size_t cap, const char *path, const char *host);
/* The delay of a slot's first check, in [0, interval_ms): consecutive slots are spread evenly over
 * the interval (golden-ratio sequence), so many backends do not fire together. */
uint32_t health_jitter_ms(uint16_t slot, uint32_t interval_ms);

#endif
