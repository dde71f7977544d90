/* The metric families of lbd's and vrrpd's status answers (proto/control.proto), rendered in the
 * Prometheus text format; docs/metrics.md lists every family with its type and labels. */
#ifndef DSR_METRICS_H
#define DSR_METRICS_H

#include "control.pb-c.h"
#include "prom.h"

struct metrics_input {
	const Dsrlb__LbdStatus *lbd;      /* NULL: lbd did not answer (dsrlb_up 0) */
	const Dsrlb__VrrpStatus *vrrpd;   /* NULL: vrrpd did not answer */
	double lbd_seconds, vrrpd_seconds; /* each query's time, to its answer or its failure */
};

void metrics_render(struct prom *m, const struct metrics_input *in);

/* The family and label that a field of Counters is rendered as; NULL for a field not in the table
 * (the unit test keeps every field in it). *label and *value are NULL for a family without labels;
 * a field rendered with vrrpd's own (ctl_*) comes back with family "" . */
const char *metrics_counter_family(const char *field, const char **label, const char **value);

#endif
