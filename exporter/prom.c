/* Prometheus text exposition format 0.0.4 (prom.h). Label values come from the daemons' answers and
 * are escaped as the format says (backslash, double quote, line feed); names are the exporter's own. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

void prom_init(struct prom *m)
{
	memset(m, 0, sizeof(*m));
}

void prom_free(struct prom *m)
{
	free(m->p);
	prom_init(m);
}

char *prom_take(struct prom *m, size_t *len)
{
	char *p = m->failed ? NULL : m->p;

	*len = p ? m->len : 0;
	if (!p)
		free(m->p);
	m->p = NULL;
	prom_free(m);
	return p;
}

static int prom_reserve(struct prom *m, size_t more)
{
	size_t cap = m->cap ? m->cap : 16384;
	char *p;

	if (m->failed)
		return -1;
	if (m->len + more + 1 <= m->cap)
		return 0;
	while (cap < m->len + more + 1)
		cap *= 2;
	if (cap > PROM_MAX_BODY || !(p = realloc(m->p, cap))) {
		m->failed = 1;
		return -1;
	}
	m->p = p;
	m->cap = cap;
	return 0;
}

static void prom_put(struct prom *m, const char *s, size_t n)
{
	if (prom_reserve(m, n) < 0)
		return;
	memcpy(m->p + m->len, s, n);
	m->len += n;
	m->p[m->len] = '\0';
}

static __attribute__((format(printf, 2, 3))) void prom_printf(struct prom *m, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		m->failed = 1;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		prom_put(m, small, (size_t)n);
		return;
	}
	if (prom_reserve(m, (size_t)n) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(m->p + m->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	m->len += (size_t)n;
}

static void prom_escaped(struct prom *m, const char *s)
{
	for (; s && *s; s++) {
		size_t run = strcspn(s, "\\\"\n");
		prom_put(m, s, run);
		s += run;
		if (!*s)
			break;
		prom_put(m, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n", 2);
	}
}

void prom_family(struct prom *m, const char *name, const char *type, const char *help)
{
	m->family = name;
	prom_printf(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The sample's name and labels, up to the blank before the value. */
static void prom_head(struct prom *m, const char *const *labels)
{
	prom_put(m, m->family, strlen(m->family));
	if (labels && labels[0]) {
		prom_put(m, "{", 1);
		for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
			prom_printf(m, "%s%s=\"", i ? "," : "", labels[i]);
			prom_escaped(m, labels[i + 1]);
			prom_put(m, "\"", 1);
		}
		prom_put(m, "}", 1);
	}
	prom_put(m, " ", 1);
}

void prom_u64(struct prom *m, const char *const *labels, uint64_t v)
{
	prom_head(m, labels);
	prom_printf(m, "%" PRIu64 "\n", v);
}

void prom_ms(struct prom *m, const char *const *labels, uint64_t ms)
{
	prom_head(m, labels);
	prom_printf(m, "%" PRIu64 ".%03u\n", ms / 1000, (unsigned)(ms % 1000));
}

void prom_double(struct prom *m, const char *const *labels, double v)
{
	prom_head(m, labels);
	prom_printf(m, "%.9g\n", v);
}

void prom_stateset(struct prom *m, const char *const *labels, const char *name, const char *const *states,
		   const char *cur)
{
	const char *l[2 * PROM_MAX_LABELS + 3];
	size_t n = 0;
	int known = 0;

	for (; labels && labels[n] && labels[n + 1] && n < 2 * PROM_MAX_LABELS; n += 2) {
		l[n] = labels[n];
		l[n + 1] = labels[n + 1];
	}
	l[n] = name;
	l[n + 2] = NULL;
	for (size_t i = 0; states[i]; i++) {
		l[n + 1] = states[i];
		known |= !strcmp(states[i], cur);
		prom_u64(m, l, !strcmp(states[i], cur));
	}
	if (!known && cur[0]) {
		l[n + 1] = cur;
		prom_u64(m, l, 1);
	}
}
