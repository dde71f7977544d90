/* Logging to stderr (foreground) or syslog, with a per-call-site rate limiter. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "clock.h"
#include "log.h"

static struct {
	int foreground;
	int debug;
	const char *ident;
} log_cfg = { 1, 0, "dsrlb" };

void log_init(const char *ident, int foreground, int debug)
{
	log_cfg.ident = ident;
	log_cfg.foreground = foreground;
	log_cfg.debug = debug;
	if (!foreground)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *name[] = { "error", "warning", "info", "debug" };

	if (lvl == LOG_LVL_DEBUG && !log_cfg.debug)
		return;
	if (log_cfg.foreground) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		fprintf(stderr, "%lld.%03ld %s: %s: ", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
			log_cfg.ident, name[lvl]);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	} else {
		vsyslog(prio[lvl], fmt, ap);
	}
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}

int log_rl_allow(struct log_rl *rl, uint32_t burst, enum log_level lvl)
{
	uint64_t now = clock_ms();

	if (now - rl->window_start_ms >= 1000) {
		if (rl->suppressed)
			log_msg(lvl, "(%u more like the previous message suppressed)", rl->suppressed);
		rl->window_start_ms = now;
		rl->in_window = 0;
		rl->suppressed = 0;
	}
	if (rl->in_window >= burst) {
		rl->suppressed++;
		return 0;
	}
	rl->in_window++;
	return 1;
}
