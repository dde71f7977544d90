/* Config loader: libinih splits the cluster INI file into sections and keys; the keyword tables below
 * say what each key means, how it is parsed and where it is stored. Every value and every rule that ties
 * two values together is checked before cfg_load() returns. docs/config.md is the user's reference:
 * keep it in step with the tables. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ifaddrs.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define CFG_FILE_MAX  (1024 * 1024)   /* far above any real config; stops a wrong path early */
#define CFG_KW_MAX    48              /* keys per section table */

#define MS(x)    ((uint32_t)(x))
#define SEC(x)   ((uint32_t)(x) * 1000u)
#define MINS(x)  ((uint32_t)(x) * 60000u)
#define HOURS(x) ((uint32_t)(x) * 3600000u)

enum cfg_sect { SECT_NONE, SECT_CLUSTER, SECT_NODE, SECT_SERVICE };

struct cfg_parser;
struct cfg_kw;
typedef int (*cfg_kw_fn)(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val);

/* One key: its parser writes the value at `off` into the section's struct (struct cfg, the current
 * cfg_node or cfg_service); min and max bound numbers and durations. */
struct cfg_kw {
	const char *name;
	cfg_kw_fn parse;
	size_t off;
	size_t size;
	uint32_t min, max;
	unsigned flags;
};

#define KW_REQUIRED 0x1u
#define KW_REPEAT   0x2u      /* may appear more than once; the parser enforces its own limit */
#define KW_ZERO_OK  0x4u      /* 0 (= off) is accepted below min */

struct cfg_parser {
	struct cfg *cfg;
	const char *buf;
	size_t len, pos;
	int line;                       /* of the line last handed to inih */
	char *err;
	size_t errlen;
	int failed;
	int err_line;                   /* 0 = the error is about the whole file */

	enum cfg_sect sect;
	char label[CFG_NAME_MAX + 16];  /* "node lb1", for messages */
	int sect_line;
	void *base;
	const struct cfg_kw *kws;
	size_t n_kws;
	int kw_line[CFG_KW_MAX];        /* where each key of the current section was last set; 0 = unset */

	int cluster_line;
	int multicast_line;
	int vip_line[CFG_MAX_SERVICES];
	int sorry_line[CFG_MAX_SERVICES];
};

static void cfg_verr(struct cfg_parser *p, int line, const char *fmt, va_list ap)
{
	int n;

	if (p->failed)
		return;
	p->failed = 1;
	p->err_line = line;
	if (line > 0)
		n = snprintf(p->err, p->errlen, "%s:%d: ", p->cfg->path, line);
	else
		n = snprintf(p->err, p->errlen, "%s: ", p->cfg->path);
	if (n >= 0 && (size_t)n < p->errlen)
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
}

static __attribute__((format(printf, 3, 4)))
int cfg_err(struct cfg_parser *p, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg_verr(p, line, fmt, ap);
	va_end(ap);
	return -1;
}

/* An error about the value on the current line, prefixed with its key. */
static __attribute__((format(printf, 3, 4)))
int kw_err(struct cfg_parser *p, const struct cfg_kw *kw, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cfg_err(p, p->line, "%s: %s", kw->name, msg);
}

/* ---- value parsers ------------------------------------------------------------------------- */

/* Plain decimal digits only: no sign, no blanks, no hex, no leading '+' that strtoul would take. */
static int cfg_parse_u64(const char *s, uint64_t limit, uint64_t *out)
{
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > limit)
			return -1;
	}
	if (*s != '\0')
		return -1;
	*out = v;
	return 0;
}

int cfg_parse_duration_ms(const char *s, uint32_t *out)
{
	static const struct { const char *unit; uint32_t ms; } units[] = {
		{ "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	uint64_t v = 0;
	const char *q;
	size_t i;

	if (s == NULL || *s < '0' || *s > '9') {
		errno = EINVAL;
		return -1;
	}
	for (q = s; *q >= '0' && *q <= '9'; q++) {
		v = v * 10 + (uint64_t)(*q - '0');
		if (v > UINT32_MAX) {
			errno = ERANGE;
			return -1;
		}
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(q, units[i].unit) != 0)
			continue;
		if (v * units[i].ms > UINT32_MAX) {
			errno = ERANGE;
			return -1;
		}
		*out = (uint32_t)(v * units[i].ms);
		return 0;
	}
	errno = EINVAL;
	return -1;
}

/* The largest unit that states ms exactly, so range messages read like the docs ("10ms..40s"). */
static const char *cfg_fmt_ms(uint32_t ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0");
	else if (ms % HOURS(1) == 0)
		snprintf(buf, len, "%uh", ms / HOURS(1));
	else if (ms % MINS(1) == 0)
		snprintf(buf, len, "%um", ms / MINS(1));
	else if (ms % SEC(1) == 0)
		snprintf(buf, len, "%us", ms / SEC(1));
	else
		snprintf(buf, len, "%ums", ms);
	return buf;
}

static void cfg_store_uint(void *dst, size_t size, uint32_t v)
{
	switch (size) {
	case sizeof(uint8_t):  *(uint8_t *)dst = (uint8_t)v; break;
	case sizeof(uint16_t): *(uint16_t *)dst = (uint16_t)v; break;
	default:               *(uint32_t *)dst = v; break;
	}
}

static int kw_uint(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	uint64_t v;

	if (cfg_parse_u64(val, UINT32_MAX, &v) < 0 || v < kw->min || v > kw->max)
		return kw_err(p, kw, "'%s' is not a number in %u..%u", val, kw->min, kw->max);
	cfg_store_uint(dst, kw->size, (uint32_t)v);
	return 0;
}

static int kw_duration(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	char lo[16], hi[16];
	uint32_t v;

	if (cfg_parse_duration_ms(val, &v) < 0)
		return kw_err(p, kw, "'%s' is not a duration (like 100ms, 2s, 1m, 1h)", val);
	/* A bare number would mean milliseconds, which is rarely what `stop_timeout = 3` meant: refused,
	 * with seconds as the hint where they fit the range. */
	if (v != 0 && val[strspn(val, "0123456789")] == '\0') {
		int s_ok = (uint64_t)v * 1000 >= kw->min && (uint64_t)v * 1000 <= kw->max;

		return kw_err(p, kw, "'%s' has no unit: did you mean %s%s? (a duration takes ms, s, m or h)",
			      val, val, s_ok ? "s" : "ms");
	}
	if ((v == 0 && (kw->flags & KW_ZERO_OK)) || (v >= kw->min && v <= kw->max)) {
		*(uint32_t *)dst = v;
		return 0;
	}
	cfg_fmt_ms(kw->min, lo, sizeof(lo));
	cfg_fmt_ms(kw->max, hi, sizeof(hi));
	return kw_err(p, kw, "'%s' is out of range (%s%s..%s)", val,
		      (kw->flags & KW_ZERO_OK) ? "0 or " : "", lo, hi);
}

static int kw_bool(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	if (strcmp(val, "yes") == 0)
		*(int *)dst = 1;
	else if (strcmp(val, "no") == 0)
		*(int *)dst = 0;
	else
		return kw_err(p, kw, "'%s' is neither yes nor no", val);
	return 0;
}

/* One word of a small fixed set, stored as an int enum. */
static int kw_choice(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val,
		     const char *const *words, const int *values, size_t n, const char *expect)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(val, words[i]) == 0) {
			if (kw->size == sizeof(uint8_t))
				*(uint8_t *)dst = (uint8_t)values[i];
			else
				*(int *)dst = values[i];
			return 0;
		}
	}
	return kw_err(p, kw, "'%s' is not one of %s", val, expect);
}

static int kw_proto(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	static const char *const w[] = { "tcp", "udp" };
	static const int v[] = { IPPROTO_TCP, IPPROTO_UDP };

	return kw_choice(p, kw, dst, val, w, v, 2, "tcp, udp");
}

static int kw_check(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	static const char *const w[] = { "none", "tcp", "http" };
	static const int v[] = { CFG_CHECK_NONE, CFG_CHECK_TCP, CFG_CHECK_HTTP };

	return kw_choice(p, kw, dst, val, w, v, 3, "none, tcp, http");
}

static int kw_persist(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	static const char *const w[] = { "none", "client" };
	static const int v[] = { CFG_PERSIST_NONE, CFG_PERSIST_CLIENT };

	return kw_choice(p, kw, dst, val, w, v, 2, "none, client");
}

static int kw_mode(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	static const char *const w[] = { "pair", "ecmp" };
	static const int v[] = { CFG_MODE_PAIR, CFG_MODE_ECMP };

	return kw_choice(p, kw, dst, val, w, v, 2, "pair, ecmp");
}

/* A kernel routing table for announcements: not 0 (unspec) nor the kernel's own 253..255. */
static int kw_table(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	uint64_t v;

	if (cfg_parse_u64(val, UINT32_MAX, &v) < 0 || v == 0 || (v >= 253 && v <= 255))
		return kw_err(p, kw, "'%s' is not a routing table id in 1..252 or 256..4294967295 "
			      "(253..255 are the kernel's default, main and local)", val);
	*(uint32_t *)dst = (uint32_t)v;
	return 0;
}

static int kw_on_down(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	static const char *const w[] = { "reschedule", "keep" };
	static const int v[] = { CFG_DOWN_RESCHEDULE, CFG_DOWN_KEEP };

	return kw_choice(p, kw, dst, val, w, v, 2, "reschedule, keep");
}

/* A name is looked up in the user database (getpwnam: /etc/passwd or NSS); a number need not be in it. */
int cfg_parse_user(const char *spec, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	char name[CFG_USER_MAX], buf[4096], *group;
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	uint64_t n;
	int have_gid = 0;

	if (strlen(spec) >= sizeof(name)) {
		snprintf(err, errlen, "'%s' is longer than %zu characters", spec, sizeof(name) - 1);
		return -1;
	}
	strcpy(name, spec);
	if ((group = strchr(name, ':')))
		*group++ = '\0';
	if (!name[0] || (group && (!group[0] || strchr(group, ':')))) {
		snprintf(err, errlen, "'%s' is not USER or USER:GROUP", spec);
		return -1;
	}
	/* (uid_t)-1 and (gid_t)-1 mean "unchanged" to the set*id calls: never a real id. */
	if (cfg_parse_u64(name, UINT32_MAX - 1, &n) == 0) {
		*uid = (uid_t)n;
		getpwuid_r(*uid, &pw, buf, sizeof(buf), &pwp);
	} else {
		getpwnam_r(name, &pw, buf, sizeof(buf), &pwp);
		if (!pwp) {
			snprintf(err, errlen, "no such user '%s'", name);
			return -1;
		}
		*uid = pwp->pw_uid;
	}
	if (pwp) {
		*gid = pwp->pw_gid;
		have_gid = 1;
	}
	if (group && cfg_parse_u64(group, UINT32_MAX - 1, &n) == 0) {
		*gid = (gid_t)n;
	} else if (group) {
		getgrnam_r(group, &gr, buf, sizeof(buf), &grp);
		if (!grp) {
			snprintf(err, errlen, "no such group '%s'", group);
			return -1;
		}
		*gid = grp->gr_gid;
	} else if (!have_gid) {
		snprintf(err, errlen, "uid %s has no account here: give its group too (%s:GID)", name, name);
		return -1;
	}
	return 0;
}

static int kw_user(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	char msg[256];

	if (cfg_parse_user(val, &p->cfg->uid, &p->cfg->gid, msg, sizeof(msg)) < 0)
		return kw_err(p, kw, "%s", msg);
	snprintf(dst, kw->size, "%s", val);
	return 0;
}

int cfg_parse_listen(const char *s, struct sockaddr_storage *out, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	uint64_t port;
	size_t n;

	if (!colon || cfg_parse_u64(colon + 1, 65535, &port) < 0 || port == 0)
		return -1;
	n = (size_t)(colon - s);
	memset(out, 0, sizeof(*out));
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']' && n - 2 < sizeof(host)) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
		memcpy(host, s + 1, n - 2);
		host[n - 2] = '\0';
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return -1;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a6);
		return 0;
	}
	if (n >= sizeof(host))
		return -1;
	struct sockaddr_in *a4 = (struct sockaddr_in *)out;
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
		return -1;
	a4->sin_family = AF_INET;
	a4->sin_port = htons((uint16_t)port);
	*len = sizeof(*a4);
	return 0;
}

/* metrics_listen: the address is any local one (0.0.0.0 and [::] included); bind() says whether it is
 * on this host when the exporter starts. */
static int kw_listen(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	if (strlen(val) >= kw->size)
		return kw_err(p, kw, "'%s' is longer than %zu characters", val, kw->size - 1);
	if (cfg_parse_listen(val, &p->cfg->metrics_addr, &p->cfg->metrics_addr_len) < 0)
		return kw_err(p, kw, "'%s' is not ADDRESS:PORT (like 127.0.0.1:9810, 0.0.0.0:9810 or [::]:9810; "
			      "port 1..65535)", val);
	snprintf(dst, kw->size, "%s", val);
	return 0;
}

/* A host address of either family: IPv4 as a dotted quad only (inet_pton refuses "10.1" and "010.0.0.1"),
 * IPv6 in any RFC 4291 text form; no unspecified, loopback, link-local, multicast or reserved address. */
static int kw_unicast(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	struct ipaddr a;
	const char *why;

	if (ipaddr_parse(val, &a) < 0)
		return kw_err(p, kw, "'%s' is not an IPv4 or IPv6 address", val);
	why = ipaddr_unusable(&a);
	if (why)
		return kw_err(p, kw, "'%s' is %s, not a unicast address a host can use", val, why);
	*(struct ipaddr *)dst = a;
	return 0;
}

static int kw_multicast(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	struct in_addr a;

	if (inet_pton(AF_INET, val, &a) != 1 || (ntohl(a.s_addr) >> 28) != 0xe)
		return kw_err(p, kw, "'%s' is not an IPv4 multicast group (224.0.0.0/4)", val);
	*(struct in_addr *)dst = a;
	return 0;
}

/* Linux's dev_valid_name(): at most IFNAMSIZ-1 bytes, not "." or "..", no '/', ':' or blanks. */
static int kw_ifname(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	size_t n = strlen(val);

	if (n >= kw->size)
		return kw_err(p, kw, "'%s' is longer than %zu characters", val, kw->size - 1);
	if (strcmp(val, ".") == 0 || strcmp(val, "..") == 0 || strpbrk(val, "/: \t") != NULL)
		return kw_err(p, kw, "'%s' is not a valid interface name", val);
	memcpy(dst, val, n + 1);
	return 0;
}

static int kw_key_file(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	struct cfg *cfg = p->cfg;
	size_t i;

	if (cfg->n_key_files == CFG_MAX_KEYS)
		return kw_err(p, kw, "at most %d key files (the first seals, all open)", CFG_MAX_KEYS);
	if (val[0] != '/')
		return kw_err(p, kw, "'%s' is not an absolute path", val);
	if (strlen(val) >= sizeof(cfg->key_files[0]))
		return kw_err(p, kw, "path is too long");
	for (i = 0; i < cfg->n_key_files; i++)
		if (strcmp(cfg->key_files[i], val) == 0)
			return kw_err(p, kw, "'%s' is listed twice", val);
	cfg->key_file_lines[cfg->n_key_files] = p->line;
	strcpy(cfg->key_files[cfg->n_key_files++], val);
	return 0;
}

static int kw_command(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	size_t n = strlen(val);

	if (n >= kw->size)
		return kw_err(p, kw, "command is longer than %zu characters", kw->size - 1);
	memcpy(dst, val, n + 1);
	return 0;
}

/* HTTP request parts go into a request line or header verbatim, so only visible ASCII is allowed. */
static int cfg_is_graph(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

static int kw_http_path(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	size_t n = strlen(val);

	if (val[0] != '/' || !cfg_is_graph(val))
		return kw_err(p, kw, "'%s' must start with '/' and hold no blanks or control characters", val);
	if (n >= kw->size)
		return kw_err(p, kw, "longer than %zu characters", kw->size - 1);
	memcpy(dst, val, n + 1);
	return 0;
}

static int kw_http_host(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	size_t n = strlen(val);

	if (!cfg_is_graph(val))
		return kw_err(p, kw, "'%s' holds blanks or control characters", val);
	if (n >= kw->size)
		return kw_err(p, kw, "longer than %zu characters", kw->size - 1);
	memcpy(dst, val, n + 1);
	return 0;
}

/* backend = ADDR [weight=N] */
static int kw_backend(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	struct cfg_service *svc = p->base;
	struct cfg_backend be = { .weight = 1, .line = p->line };
	char buf[256], *tok, *save = NULL, a[IPADDR_STRLEN];
	uint64_t w;
	size_t i;

	if (strlen(val) >= sizeof(buf))
		return kw_err(p, kw, "value is too long");
	strcpy(buf, val);
	tok = strtok_r(buf, " \t", &save);
	if (tok == NULL)
		return kw_err(p, kw, "missing the backend's address");
	if (kw_unicast(p, kw, &be.addr, tok) < 0)
		return -1;
	while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
		if (strncmp(tok, "weight=", 7) != 0)
			return kw_err(p, kw, "unknown option '%s' (expected weight=N)", tok);
		if (cfg_parse_u64(tok + 7, 65535, &w) < 0)
			return kw_err(p, kw, "'%s' is not a weight in 0..65535", tok + 7);
		be.weight = (uint32_t)w;
	}
	for (i = 0; i < svc->n_backends; i++)
		if (ipaddr_eq(&svc->backends[i].addr, &be.addr))
			return kw_err(p, kw, "%s is already listed at line %d", ipaddr_str(&be.addr, a),
				      svc->backends[i].line);
	if (svc->n_backends == CFG_MAX_BACKENDS)
		return kw_err(p, kw, "more than %d backends", CFG_MAX_BACKENDS);
	svc->backends[svc->n_backends++] = be;
	return 0;
}

/* A group by name (looked up in the group database now, so a typo is an error with its line, not a
 * refusal later) or by numeric gid, which needs no entry in /etc/group. */
static int kw_group(struct cfg_parser *p, const struct cfg_kw *kw, void *dst, const char *val)
{
	struct cfg_group *g = dst;
	struct group gr, *res = NULL;
	char buf[4096];
	uint64_t v;
	int e;

	if (strlen(val) >= sizeof(g->name))
		return kw_err(p, kw, "'%s' is longer than %zu characters", val, sizeof(g->name) - 1);
	if (val[0] && !val[strspn(val, "0123456789")]) {
		if (cfg_parse_u64(val, UINT32_MAX - 1, &v) < 0)
			return kw_err(p, kw, "'%s' is not a gid in 0..%u", val, UINT32_MAX - 1);
		g->gid = (gid_t)v;
	} else {
		e = getgrnam_r(val, &gr, buf, sizeof(buf), &res);
		if (!res)
			return kw_err(p, kw, "unknown group '%s'%s%s (a numeric gid is accepted too)", val,
				      e ? ": " : "", e ? strerror(e) : "");
		g->gid = gr.gr_gid;
	}
	snprintf(g->name, sizeof(g->name), "%s", val);
	g->set = 1;
	return 0;
}

/* ---- keyword tables ------------------------------------------------------------------------ */

#define FIELD(type, f) offsetof(type, f), sizeof(((type *)0)->f)
#define C(f) FIELD(struct cfg, f)
#define N(f) FIELD(struct cfg_node, f)
#define S(f) FIELD(struct cfg_service, f)

static const struct cfg_kw cfg_cluster_kws[] = {
	{ "mode",                    kw_mode,      C(mode),               0, 0, 0 },
	{ "interface",               kw_ifname,    C(interface),          0, 0, KW_REQUIRED },
	{ "announce_table",          kw_table,     C(announce_table),     0, 0, 0 },
	{ "announce_device",         kw_ifname,    C(announce_device),    0, 0, 0 },
	{ "drain_quiet",             kw_duration,  C(drain_quiet_ms),     MS(10), MINS(1), 0 },
	{ "key_file",                kw_key_file,  C(key_files),          0, 0, KW_REQUIRED | KW_REPEAT },
	{ "advert_interval",         kw_duration,  C(advert_interval_ms), MS(5), SEC(40), 0 },
	{ "preempt",                 kw_bool,      C(preempt),            0, 0, 0 },
	{ "preempt_delay",           kw_duration,  C(preempt_delay_ms),   0, HOURS(1), 0 },
	{ "garp_count",              kw_uint,      C(garp_count),         1, 100, 0 },
	{ "garp_repeat",             kw_duration,  C(garp_repeat_ms),     0, HOURS(1), 0 },
	{ "garp_refresh",            kw_duration,  C(garp_refresh_ms),    SEC(1), HOURS(24), KW_ZERO_OK },
	{ "fence_timeout",           kw_duration,  C(fence_ms),           MS(50), MINS(10), 0 },
	{ "lbd_timeout",             kw_duration,  C(lbd_timeout_ms),     MS(50), MINS(10), 0 },
	{ "stop_timeout",            kw_duration,  C(stop_timeout_ms),    0, MINS(10), 0 },
	{ "heartbeat_port",          kw_uint,      C(heartbeat_port),     1, 65535, 0 },
	{ "sync_port",               kw_uint,      C(sync_port),          1, 65535, 0 },
	{ "multicast",               kw_multicast, C(multicast),          0, 0, 0 },
	{ "realtime",                kw_bool,      C(realtime),           0, 0, 0 },
	{ "sync",                    kw_bool,      C(sync),               0, 0, 0 },
	{ "kernel_drop",             kw_bool,      C(kernel_drop),        0, 0, 0 },
	{ "sync_timeout",            kw_duration,  C(sync_timeout_ms),    SEC(1), HOURS(1), 0 },
	{ "sync_peer_timeout",       kw_duration,  C(sync_peer_timeout_ms), SEC(1), MINS(10), 0 },
	{ "flow_max",                kw_uint,      C(flow_max),           1024, 16777216, 0 },
	{ "workers",                 kw_uint,      C(workers),            1, 16, 0 },
	{ "rx_ring_version",         kw_uint,      C(rx_ring_version),    2, 3, 0 },
	{ "tcp_established_timeout", kw_duration,  C(tcp_established_ms), SEC(1), HOURS(168), 0 },
	{ "tcp_syn_timeout",         kw_duration,  C(tcp_syn_ms),         SEC(1), HOURS(168), 0 },
	{ "tcp_fin_timeout",         kw_duration,  C(tcp_fin_ms),         SEC(1), HOURS(168), 0 },
	{ "udp_timeout",             kw_duration,  C(udp_ms),             SEC(1), HOURS(168), 0 },
	{ "persistence_timeout",     kw_duration,  C(persistence_ms),     SEC(1), HOURS(168), 0 },
	{ "arp_refresh",             kw_duration,  C(arp_refresh_ms),     MS(100), HOURS(1), 0 },
	{ "notify_master",           kw_command,   C(notify_master),      0, 0, 0 },
	{ "notify_backup",           kw_command,   C(notify_backup),      0, 0, 0 },
	{ "notify_fault",            kw_command,   C(notify_fault),       0, 0, 0 },
	{ "notify_timeout",          kw_duration,  C(notify_timeout_ms),  MS(100), MINS(10), 0 },
	{ "operator_group",          kw_group,     C(operator_group),     0, 0, 0 },
	{ "status_group",            kw_group,     C(status_group),       0, 0, 0 },
	{ "user",                    kw_user,      C(user),               0, 0, 0 },
	{ "metrics_listen",          kw_listen,    C(metrics_listen),     0, 0, 0 },
};

static const struct cfg_kw cfg_node_kws[] = {
	{ "address",  kw_unicast, N(addr),     0, 0, KW_REQUIRED },
	{ "priority", kw_uint,    N(priority), 1, 254, 0 },  /* required in mode = pair: cfg_check_all */
};

static const struct cfg_kw cfg_service_kws[] = {
	{ "vip",             kw_unicast,   S(vip),               0, 0, KW_REQUIRED },
	{ "port",            kw_uint,      S(port),              1, 65535, KW_REQUIRED },
	{ "protocol",        kw_proto,     S(proto),             0, 0, 0 },
	{ "backend",         kw_backend,   S(backends),          0, 0, KW_REQUIRED | KW_REPEAT },
	{ "check",           kw_check,     S(check),             0, 0, 0 },
	{ "check_interval",  kw_duration,  S(check_interval_ms), MS(100), HOURS(1), 0 },
	{ "check_timeout",   kw_duration,  S(check_timeout_ms),  MS(10), HOURS(1), 0 },
	{ "rise",            kw_uint,      S(rise),              1, 100, 0 },
	{ "fall",            kw_uint,      S(fall),              1, 100, 0 },
	{ "check_path",      kw_http_path, S(check_path),        0, 0, 0 },
	{ "check_status",    kw_uint,      S(check_status),      100, 599, 0 },
	{ "check_host",      kw_http_host, S(check_host),        0, 0, 0 },
	{ "on_backend_down", kw_on_down,   S(on_backend_down),   0, 0, 0 },
	{ "persistence",     kw_persist,   S(persistence),       0, 0, 0 },
	{ "sorry_backend",   kw_unicast,   S(sorry_backend),     0, 0, 0 },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(NELEM(cfg_cluster_kws) <= CFG_KW_MAX, "raise CFG_KW_MAX");
_Static_assert(NELEM(cfg_service_kws) <= CFG_KW_MAX, "raise CFG_KW_MAX");

/* Where a key of the current section was set, 0 if it was not. */
static int cfg_kw_line(const struct cfg_parser *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n_kws; i++)
		if (strcmp(p->kws[i].name, name) == 0)
			return p->kw_line[i];
	return 0;
}

static void cfg_defaults(struct cfg *cfg)
{
	cfg->advert_interval_ms = MS(100);
	cfg->announce_table = 100;
	strcpy(cfg->announce_device, "dsrlb0");
	cfg->drain_quiet_ms = MS(500);
	cfg->preempt = 1;
	cfg->garp_count = 5;
	cfg->garp_repeat_ms = SEC(5);
	cfg->lbd_timeout_ms = SEC(1);
	cfg->stop_timeout_ms = SEC(3);
	cfg->heartbeat_port = 8112;
	cfg->sync_port = 8113;
	cfg->realtime = 1;
	cfg->flow_max = 1048576;
	cfg->workers = 1;
	cfg->sync = 1;
	cfg->kernel_drop = 1;
	cfg->sync_timeout_ms = 30000;
	cfg->sync_peer_timeout_ms = SEC(3);
	cfg->rx_ring_version = 2;
	cfg->tcp_established_ms = SEC(900);
	cfg->tcp_syn_ms = SEC(60);
	cfg->tcp_fin_ms = SEC(120);
	cfg->udp_ms = SEC(300);
	cfg->persistence_ms = SEC(300);
	cfg->arp_refresh_ms = SEC(5);
	cfg->notify_timeout_ms = SEC(5);
	/* fence_ms is derived from advert_interval once [cluster] is complete. */
}

static void cfg_service_defaults(struct cfg_service *svc)
{
	svc->proto = IPPROTO_TCP;
	svc->check = CFG_CHECK_TCP;
	svc->check_interval_ms = SEC(2);
	svc->check_timeout_ms = SEC(1);
	svc->rise = 2;
	svc->fall = 3;
	strcpy(svc->check_path, "/");
	svc->check_status = 200;
	svc->on_backend_down = CFG_DOWN_RESCHEDULE;
}

/* ---- sections ------------------------------------------------------------------------------ */

static int cfg_cluster_finish(struct cfg_parser *p)
{
	struct cfg *cfg = p->cfg;
	int line;

	cfg->mode_line = cfg_kw_line(p, "mode");
	p->multicast_line = cfg_kw_line(p, "multicast");
	cfg->announce_table_line = cfg_kw_line(p, "announce_table");
	cfg->announce_device_line = cfg_kw_line(p, "announce_device");
	line = cfg_kw_line(p, "fence_timeout");
	if (line == 0) {
		cfg->fence_ms = 4 * cfg->advert_interval_ms;
		if (cfg->fence_ms < MS(50))
			cfg->fence_ms = MS(50);
	} else if (cfg->fence_ms < 2 * cfg->advert_interval_ms) {
		/* lbd would fence itself between two of vrrpd's regular keepalives. */
		return cfg_err(p, line, "fence_timeout: %ums is shorter than two advert_intervals (%ums)",
			       cfg->fence_ms, 2 * cfg->advert_interval_ms);
	}
	if (cfg->heartbeat_port == cfg->sync_port) {
		line = cfg_kw_line(p, "sync_port");
		if (line == 0)
			line = cfg_kw_line(p, "heartbeat_port");
		return cfg_err(p, line, "heartbeat_port and sync_port are both %u", cfg->sync_port);
	}
	return 0;
}

static int cfg_node_finish(struct cfg_parser *p)
{
	struct cfg *cfg = p->cfg;
	struct cfg_node *node = p->base;
	size_t i;

	char a[IPADDR_STRLEN];

	for (i = 0; i + 1 < cfg->n_nodes; i++)
		if (ipaddr_eq(&cfg->nodes[i].addr, &node->addr))
			return cfg_err(p, cfg_kw_line(p, "address"), "address %s is also node %s's (line %d)",
				       ipaddr_str(&node->addr, a), cfg->nodes[i].name, cfg->nodes[i].line);
	return 0;
}

static int cfg_service_finish(struct cfg_parser *p)
{
	static const char *const http_only[] = { "check_path", "check_status", "check_host" };
	struct cfg *cfg = p->cfg;
	struct cfg_service *svc = p->base;
	size_t idx = cfg->n_services - 1, i;
	int line;
	char a[IPADDR_STRLEN];

	p->vip_line[idx] = cfg_kw_line(p, "vip");
	/* A backend gets the client's frame unchanged: it must be of the VIP's family. */
	for (i = 0; i < svc->n_backends; i++)
		if (ipaddr_family(&svc->backends[i].addr) != ipaddr_family(&svc->vip)) {
			char v[IPADDR_STRLEN];
			return cfg_err(p, svc->backends[i].line, "backend %s is %s but vip %s is %s: a service's "
				       "backends are of its vip's family", ipaddr_str(&svc->backends[i].addr, a),
				       ipaddr_is_v4(&svc->backends[i].addr) ? "IPv4" : "IPv6",
				       ipaddr_str(&svc->vip, v), ipaddr_is_v4(&svc->vip) ? "IPv4" : "IPv6");
		}
	line = cfg_kw_line(p, "sorry_backend");
	if (line && ipaddr_family(&svc->sorry_backend) != ipaddr_family(&svc->vip))
		return cfg_err(p, line, "sorry_backend and vip are of different address families");
	p->sorry_line[idx] = cfg_kw_line(p, "sorry_backend");
	/* A TCP connect says nothing about a UDP service: UDP services are not checked unless asked to. */
	if (svc->proto == IPPROTO_UDP && !cfg_kw_line(p, "check"))
		svc->check = CFG_CHECK_NONE;

	if (svc->check != CFG_CHECK_HTTP) {
		for (i = 0; i < NELEM(http_only); i++) {
			line = cfg_kw_line(p, http_only[i]);
			if (line)
				return cfg_err(p, line, "%s: only used with check = http", http_only[i]);
		}
	}
	if (svc->check != CFG_CHECK_NONE && svc->check_timeout_ms >= svc->check_interval_ms) {
		line = cfg_kw_line(p, "check_timeout");
		if (line == 0)
			line = cfg_kw_line(p, "check_interval");
		return cfg_err(p, line, "check_timeout (%ums) must be shorter than check_interval (%ums)",
			       svc->check_timeout_ms, svc->check_interval_ms);
	}
	for (i = 0; i < idx; i++) {
		const struct cfg_service *o = &cfg->services[i];

		if (ipaddr_eq(&o->vip, &svc->vip) && o->port == svc->port && o->proto == svc->proto)
			return cfg_err(p, p->vip_line[idx], "%s port %u/%s is already service %s (line %d)",
				       ipaddr_str(&svc->vip, a), svc->port,
				       svc->proto == IPPROTO_TCP ? "tcp" : "udp", o->name, o->line);
	}
	return 0;
}

/* Ends the current section: required keys, then the rules within the section. */
static int cfg_section_finish(struct cfg_parser *p)
{
	size_t i;

	if (p->sect == SECT_NONE)
		return 0;
	for (i = 0; i < p->n_kws; i++)
		if ((p->kws[i].flags & KW_REQUIRED) && p->kw_line[i] == 0)
			return cfg_err(p, p->sect_line, "[%s]: missing '%s'", p->label, p->kws[i].name);
	switch (p->sect) {
	case SECT_CLUSTER: return cfg_cluster_finish(p);
	case SECT_NODE:    return cfg_node_finish(p);
	case SECT_SERVICE: return cfg_service_finish(p);
	default:           return 0;
	}
}

static int cfg_valid_name(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");

	return n > 0 && n < CFG_NAME_MAX && s[n] == '\0';
}

/* A "[kind name]" line, comment and blanks already stripped. Called by the reader rather than from
 * inih's key handler, because inih reports nothing for a section without keys. */
static int cfg_section_begin(struct cfg_parser *p, const char *hdr, size_t len)
{
	struct cfg *cfg = p->cfg;
	char inner[256], *kind, *name, *save = NULL;
	size_t i;

	if (cfg_section_finish(p) < 0)
		return -1;
	if (hdr[len - 1] != ']') {
		if (memchr(hdr, ']', len) == NULL)
			return cfg_err(p, p->line, "section header without ']'");
		return cfg_err(p, p->line, "unexpected text after ']'");
	}
	if (len - 2 >= sizeof(inner))
		return cfg_err(p, p->line, "section header is too long");
	memcpy(inner, hdr + 1, len - 2);
	inner[len - 2] = '\0';
	kind = strtok_r(inner, " \t", &save);
	name = kind ? strtok_r(NULL, " \t", &save) : NULL;
	if (kind == NULL)
		return cfg_err(p, p->line, "empty section header");
	if (name && strtok_r(NULL, " \t", &save) != NULL)
		return cfg_err(p, p->line, "a section header is one or two words, like [node lb1]");
	if (name == NULL)
		name = "";

	memset(p->kw_line, 0, sizeof(p->kw_line));
	p->sect_line = p->line;
	if (strcmp(kind, "cluster") == 0) {
		if (*name)
			return cfg_err(p, p->line, "[cluster] takes no name");
		if (p->cluster_line)
			return cfg_err(p, p->line, "second [cluster] section (the first is at line %d)",
				       p->cluster_line);
		p->cluster_line = p->line;
		p->sect = SECT_CLUSTER;
		p->base = cfg;
		p->kws = cfg_cluster_kws;
		p->n_kws = NELEM(cfg_cluster_kws);
		snprintf(p->label, sizeof(p->label), "cluster");
		return 0;
	}
	if (strcmp(kind, "node") != 0 && strcmp(kind, "service") != 0)
		return cfg_err(p, p->line, "unknown section [%s] (expected cluster, node or service)", kind);
	if (!cfg_valid_name(name))
		return cfg_err(p, p->line, "bad %s name '%s' (1 to %d characters of A-Z a-z 0-9 _ . -)",
			       kind, name, CFG_NAME_MAX - 1);
	snprintf(p->label, sizeof(p->label), "%s %s", kind, name);

	if (strcmp(kind, "node") == 0) {
		struct cfg_node *node;

		for (i = 0; i < cfg->n_nodes; i++)
			if (strcmp(cfg->nodes[i].name, name) == 0)
				return cfg_err(p, p->line, "node %s is already defined at line %d", name,
					       cfg->nodes[i].line);
		if (cfg->n_nodes == CFG_MAX_NODES)
			return cfg_err(p, p->line, "more than %d nodes", CFG_MAX_NODES);
		node = &cfg->nodes[cfg->n_nodes++];
		strcpy(node->name, name);
		node->line = p->line;
		p->sect = SECT_NODE;
		p->base = node;
		p->kws = cfg_node_kws;
		p->n_kws = NELEM(cfg_node_kws);
	} else {
		struct cfg_service *svc;

		for (i = 0; i < cfg->n_services; i++)
			if (strcmp(cfg->services[i].name, name) == 0)
				return cfg_err(p, p->line, "service %s is already defined at line %d", name,
					       cfg->services[i].line);
		if (cfg->n_services == CFG_MAX_SERVICES)
			return cfg_err(p, p->line, "more than %d services", CFG_MAX_SERVICES);
		svc = &cfg->services[cfg->n_services++];
		cfg_service_defaults(svc);
		strcpy(svc->name, name);
		svc->line = p->line;
		p->sect = SECT_SERVICE;
		p->base = svc;
		p->kws = cfg_service_kws;
		p->n_kws = NELEM(cfg_service_kws);
	}
	return 0;
}

/* ---- inih glue ----------------------------------------------------------------------------- */

/* fgets() over the file's bytes, which cfg_load() has already read (and hashed) in one piece. Besides
 * counting lines it evens out what inih would do differently: leading blanks go (inih would take an
 * indented line as the continuation of the previous value), comments go ("#" or ";" at the start or
 * after a blank; inih only knows " ;"), a line that does not fit inih's fixed buffer is an error rather
 * than silently cut in two, and control characters mean this is no text file. Returning NULL after an
 * error ends the parse. */
static char *cfg_reader(char *str, int num, void *stream)
{
	struct cfg_parser *p = stream;
	const char *s, *nl;
	size_t n, i, start, end;

	if (p->failed || p->pos >= p->len || num < 3)
		return NULL;
	s = p->buf + p->pos;
	nl = memchr(s, '\n', p->len - p->pos);
	n = nl ? (size_t)(nl - s) : p->len - p->pos;
	p->pos += n + (nl != NULL);
	p->line++;

	if (p->line == 1 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		n -= 3;
	}
	if (n > 0 && s[n - 1] == '\r')
		n--;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < ' ' && c != '\t') || c == 0x7f) {
			cfg_err(p, p->line, "control character 0x%02x (is this a text file?)", c);
			return NULL;
		}
	}
	for (start = 0; start < n && (s[start] == ' ' || s[start] == '\t'); start++)
		;
	for (end = start; end < n; end++)
		if ((s[end] == '#' || s[end] == ';') &&
		    (end == start || s[end - 1] == ' ' || s[end - 1] == '\t'))
			break;
	while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
		end--;
	n = end - start;
	if (n > (size_t)num - 2) {
		cfg_err(p, p->line, "line is too long (at most %d characters, comments aside)", num - 2);
		return NULL;
	}
	if (n > 0 && s[start] == '[' && cfg_section_begin(p, s + start, n) < 0)
		return NULL;
	memcpy(str, s + start, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

/* The section a key belongs to, for a better message when it is in the wrong one. */
static const char *cfg_kw_home(const char *name)
{
	static const struct { const char *sect; const struct cfg_kw *kws; size_t n; } tables[] = {
		{ "cluster", cfg_cluster_kws, NELEM(cfg_cluster_kws) },
		{ "node", cfg_node_kws, NELEM(cfg_node_kws) },
		{ "service", cfg_service_kws, NELEM(cfg_service_kws) },
	};
	size_t t, i;

	for (t = 0; t < NELEM(tables); t++)
		for (i = 0; i < tables[t].n; i++)
			if (strcmp(tables[t].kws[i].name, name) == 0)
				return tables[t].sect;
	return NULL;
}

static int cfg_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_parser *p = user;
	const struct cfg_kw *kw;
	size_t i;

	if (p->failed)
		return 0;
	if (p->sect == SECT_NONE) {
		cfg_err(p, p->line, "'%s' comes before the first section", name);
		return 0;
	}
	for (i = 0; i < p->n_kws; i++)
		if (strcmp(p->kws[i].name, name) == 0)
			break;
	if (i == p->n_kws) {
		const char *home = cfg_kw_home(name);

		if (home != NULL)
			cfg_err(p, p->line, "'%s' belongs in a [%s] section, not in [%s]", name, home, p->label);
		else
			cfg_err(p, p->line, "unknown key '%s' in [%s]", name, p->label);
		return 0;
	}
	kw = &p->kws[i];
	if (p->kw_line[i] && !(kw->flags & KW_REPEAT)) {
		cfg_err(p, p->line, "%s: already set at line %d", name, p->kw_line[i]);
		return 0;
	}
	if (*value == '\0') {
		kw_err(p, kw, "no value");
		return 0;
	}
	p->kw_line[i] = p->line;
	return kw->parse(p, kw, (char *)p->base + kw->off, value) == 0;
}

/* Rules across sections, once the whole file is read. */
static int cfg_check_all(struct cfg_parser *p)
{
	struct cfg *cfg = p->cfg;
	size_t i, j, k;
	char a[IPADDR_STRLEN];

	if (p->cluster_line == 0)
		return cfg_err(p, 0, "no [cluster] section");
	if (cfg->n_nodes == 0)
		return cfg_err(p, 0, "no [node] section");
	if (cfg->mode == CFG_MODE_PAIR) {
		if (cfg->n_nodes > CFG_PAIR_NODES)
			return cfg_err(p, cfg->nodes[CFG_PAIR_NODES].line,
				       "[node %s]: more than %d nodes in mode = pair (mode = ecmp allows %d)",
				       cfg->nodes[CFG_PAIR_NODES].name, CFG_PAIR_NODES, CFG_MAX_NODES);
		for (k = 0; k < cfg->n_nodes; k++)
			if (cfg->nodes[k].priority == 0)
				return cfg_err(p, cfg->nodes[k].line,
					       "[node %s]: missing 'priority' (required in mode = pair)",
					       cfg->nodes[k].name);
	}

	/* Heartbeats and sync go from node to node: one family for all of them. */
	for (k = 1; k < cfg->n_nodes; k++)
		if (ipaddr_family(&cfg->nodes[k].addr) != ipaddr_family(&cfg->nodes[0].addr))
			return cfg_err(p, cfg->nodes[k].line, "[node %s]: address %s is not of the same family as "
				       "node %s's (line %d): heartbeats and sync need one family", cfg->nodes[k].name,
				       ipaddr_str(&cfg->nodes[k].addr, a), cfg->nodes[0].name, cfg->nodes[0].line);
	if (cfg->multicast.s_addr && cfg->n_nodes && !ipaddr_is_v4(&cfg->nodes[0].addr))
		return cfg_err(p, p->multicast_line, "multicast: an IPv4 group, but the nodes' "
			       "addresses are IPv6 (leave multicast unset: heartbeats go by unicast)");

	for (i = 0; i < cfg->n_services; i++) {
		const struct cfg_service *s = &cfg->services[i];

		for (k = 0; k < cfg->n_nodes; k++)
			if (ipaddr_eq(&s->vip, &cfg->nodes[k].addr))
				return cfg_err(p, p->vip_line[i], "vip %s is node %s's address (line %d)",
					       ipaddr_str(&s->vip, a), cfg->nodes[k].name, cfg->nodes[k].line);
		for (j = 0; j < cfg->n_services; j++) {
			const struct cfg_service *t = &cfg->services[j];

			for (k = 0; k < t->n_backends; k++)
				if (ipaddr_eq(&t->backends[k].addr, &s->vip))
					return cfg_err(p, p->vip_line[i], "vip %s is also a backend (line %d)",
						       ipaddr_str(&s->vip, a), t->backends[k].line);
		}
		for (k = 0; k < cfg->n_nodes; k++) {
			for (j = 0; j < s->n_backends; j++)
				if (ipaddr_eq(&s->backends[j].addr, &cfg->nodes[k].addr))
					return cfg_err(p, s->backends[j].line,
						       "backend %s is node %s's address (line %d)",
						       ipaddr_str(&s->backends[j].addr, a), cfg->nodes[k].name,
						       cfg->nodes[k].line);
			if (ipaddr_eq(&s->sorry_backend, &cfg->nodes[k].addr))
				return cfg_err(p, p->sorry_line[i], "sorry_backend %s is node %s's address",
					       ipaddr_str(&s->sorry_backend, a), cfg->nodes[k].name);
		}
		for (j = 0; p->sorry_line[i] && j < cfg->n_services; j++)
			if (ipaddr_eq(&s->sorry_backend, &cfg->services[j].vip))
				return cfg_err(p, p->sorry_line[i], "sorry_backend %s is the vip of service %s",
					       ipaddr_str(&s->sorry_backend, a), cfg->services[j].name);
	}
	return 0;
}

/* The whole file in one buffer, so the digest covers exactly the bytes that were parsed. */
static char *cfg_read_file(const char *path, size_t *lenp, char *err, size_t errlen)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nb;
	ssize_t r;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > CFG_FILE_MAX + 1)
				cap = CFG_FILE_MAX + 1;
			if (len == cap) {
				snprintf(err, errlen, "%s: larger than %d bytes", path, CFG_FILE_MAX);
				goto fail;
			}
			nb = realloc(buf, cap);
			if (nb == NULL) {
				snprintf(err, errlen, "%s: %s", path, strerror(errno));
				goto fail;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	*lenp = len;
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

struct cfg *cfg_load(const char *path, char *err, size_t errlen)
{
	struct cfg_parser *p;
	struct cfg *cfg;
	char scratch[1];
	size_t len = 0;
	char *buf;
	int ret;

	if (err == NULL || errlen == 0) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	err[0] = '\0';
	if (strlen(path) >= sizeof(cfg->path)) {
		snprintf(err, errlen, "%s: %s", path, strerror(ENAMETOOLONG));
		return NULL;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "%s: libsodium failed to initialise", path);
		return NULL;
	}
	buf = cfg_read_file(path, &len, err, errlen);
	if (buf == NULL)
		return NULL;
	cfg = calloc(1, sizeof(*cfg));
	p = calloc(1, sizeof(*p));
	if (cfg == NULL || p == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		goto fail;
	}
	strcpy(cfg->path, path);
	cfg_defaults(cfg);
	crypto_generichash(cfg->digest, sizeof(cfg->digest), (const unsigned char *)buf, len, NULL, 0);

	p->cfg = cfg;
	p->buf = buf;
	p->len = len;
	p->err = err;
	p->errlen = errlen;
	ret = ini_parse_stream(cfg_reader, p, cfg_handler, p);
	if (ret < 0) {
		p->failed = 0;
		cfg_err(p, 0, "%s", strerror(ENOMEM));
	} else if (ret > 0 && (!p->failed || p->err_line == 0 || ret < p->err_line)) {
		/* inih found a line that is neither a section nor a key; it is the earliest error. */
		p->failed = 0;
		cfg_err(p, ret, "expected 'key = value' or '[section]'");
	}
	if (!p->failed)
		cfg_section_finish(p);
	if (!p->failed)
		cfg_check_all(p);
	if (p->failed)
		goto fail;
	free(p);
	free(buf);
	return cfg;
fail:
	free(p);
	free(buf);
	cfg_free(cfg);
	return NULL;
}

void cfg_free(struct cfg *cfg)
{
	free(cfg);
}

/* "lb1 192.0.2.11, lb2 192.0.2.12" */
static void cfg_node_list(const struct cfg *cfg, char *buf, size_t len)
{
	size_t i, off = 0;
	char a[IPADDR_STRLEN];
	int n;

	buf[0] = '\0';
	for (i = 0; i < cfg->n_nodes && off < len; i++) {
		ipaddr_str(&cfg->nodes[i].addr, a);
		n = snprintf(buf + off, len - off, "%s%s %s", i ? ", " : "", cfg->nodes[i].name, a);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

const struct cfg_node *cfg_find_node(const struct cfg *cfg, const char *name, char *err, size_t errlen)
{
	const struct cfg_node *found = NULL;
	struct ifaddrs *ifa, *i;
	char list[1024], scratch[1];
	size_t k;

	if (err == NULL || errlen == 0) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	cfg_node_list(cfg, list, sizeof(list));
	if (name != NULL) {
		for (k = 0; k < cfg->n_nodes; k++)
			if (strcmp(cfg->nodes[k].name, name) == 0)
				return &cfg->nodes[k];
		snprintf(err, errlen, "%s: no node named '%s' (the nodes are %s)", cfg->path, name, list);
		return NULL;
	}

	if (getifaddrs(&ifa) < 0) {
		snprintf(err, errlen, "getifaddrs: %s", strerror(errno));
		return NULL;
	}
	for (k = 0; k < cfg->n_nodes; k++) {
		for (i = ifa; i != NULL; i = i->ifa_next) {
			struct ipaddr local;
			if (i->ifa_addr == NULL || ipaddr_from_sockaddr(i->ifa_addr, &local, NULL) < 0)
				continue;
			if (!ipaddr_eq(&local, &cfg->nodes[k].addr))
				continue;
			if (found != NULL) {
				freeifaddrs(ifa);
				snprintf(err, errlen, "%s: the addresses of several nodes (%s) are local; "
					 "name the node to run as", cfg->path, list);
				return NULL;
			}
			found = &cfg->nodes[k];
			break;
		}
	}
	freeifaddrs(ifa);
	if (found == NULL)
		snprintf(err, errlen, "%s: no node's address is on a local interface (the nodes are %s)",
			 cfg->path, list);
	return found;
}

const struct cfg_node *cfg_peer(const struct cfg *cfg, const struct cfg_node *self)
{
	size_t k;

	if (self == NULL)
		return NULL;
	for (k = 0; k < cfg->n_nodes; k++)
		if (&cfg->nodes[k] != self && strcmp(cfg->nodes[k].name, self->name) != 0)
			return &cfg->nodes[k];
	return NULL;
}

/* The new owner's gratuitous ARP goes out as it claims MASTER, in the same moment as the advert that
 * tells us; two more intervals and 50 ms cover the LAN taking it in. Both nodes forwarding meanwhile is
 * harmless in DSR: they choose the same backends. */
uint32_t cfg_release_ms(const struct cfg *cfg)
{
	return 2 * cfg->advert_interval_ms + 50;
}

size_t cfg_vips(const struct cfg *cfg, struct ipaddr *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct ipaddr *vip = &cfg->services[i].vip;
		size_t j;
		for (j = 0; j < n && !ipaddr_eq(&out[j], vip); j++)
			;
		if (j == n && n < cap)
			out[n++] = *vip;
	}
	return n;
}

int cfg_has_ipv6(const struct cfg *cfg)
{
	for (size_t i = 0; i < cfg->n_services; i++)
		if (!ipaddr_is_v4(&cfg->services[i].vip))
			return 1;
	return 0;
}
