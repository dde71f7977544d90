/* The Prometheus text exposition format, version 0.0.4: a growing buffer, a family header (HELP and
 * TYPE) and its samples, with label values escaped. Every sample belongs to the family opened last, so
 * a family's samples stay together as the format requires. */
#ifndef DSR_PROM_H
#define DSR_PROM_H

#include <stddef.h>
#include <stdint.h>

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define PROM_MAX_BODY (64u << 20)   /* far above 64 services x 64 backends; the buffer stops growing here */
#define PROM_MAX_LABELS 8           /* label pairs of one sample */

struct prom {
	char *p;
	size_t len, cap;
	int failed;                 /* out of memory or over PROM_MAX_BODY: the text is incomplete */
	const char *family;         /* the family samples go to */
};

/* Labels are name/value pairs in one NULL-terminated array: PROM_L("service", "web", "backend", ip). */
#define PROM_L(...) ((const char *const[]){ __VA_ARGS__, NULL })

void prom_init(struct prom *m);
void prom_free(struct prom *m);
/* Hands the text over (the caller frees it); *len its length. NULL if it failed. */
char *prom_take(struct prom *m, size_t *len);

/* Opens a family: type is "counter" or "gauge"; help is one line of plain text. */
void prom_family(struct prom *m, const char *name, const char *type, const char *help);
void prom_u64(struct prom *m, const char *const *labels, uint64_t v);
/* A duration given in milliseconds, written in seconds (the base unit) without rounding. */
void prom_ms(struct prom *m, const char *const *labels, uint64_t ms);
void prom_double(struct prom *m, const char *const *labels, double v);
/* A state set: one sample per state, 1 for `cur` and 0 for the others, under label `name`; a current
 * state missing from `states` (a daemon newer than the exporter) gets its own sample. */
void prom_stateset(struct prom *m, const char *const *labels, const char *name, const char *const *states,
		   const char *cur);

#endif
