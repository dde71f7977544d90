/* Logging to stderr (foreground) or syslog, with a per-call-site rate limiter. When stderr is the
 * journal's stream (systemd sets JOURNAL_STREAM to its device:inode), each line starts with the
 * sd-daemon priority prefix "<N>" instead of a time stamp, so `journalctl -p warning` works. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>

#include "clock.h"
#include "log.h"

static struct {
	int foreground;
	int debug;
	int journal;                    /* stderr is the journal's stream */
	const char *ident;
} log_cfg = { 1, 0, 0, "dsrlb" };

/* JOURNAL_STREAM=DEV:INO names stderr only while stderr still is that stream (not redirected since). */
static int log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
	       (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident, int foreground, int debug)
{
	log_cfg.ident = ident;
	log_cfg.foreground = foreground;
	log_cfg.debug = debug;
	log_cfg.journal = foreground && log_stderr_is_journal();
	if (!foreground)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *name[] = { "error", "warning", "info", "debug" };

	if (lvl == LOG_LVL_DEBUG && !log_cfg.debug)
		return;
	if (log_cfg.journal) {
		/* One write per line: the journal splits the stream at newlines. */
		char line[1024];
		int n = vsnprintf(line, sizeof(line), fmt, ap);

		fprintf(stderr, "<%d>%s%s\n", prio[lvl], line, n >= (int)sizeof(line) ? "..." : "");
	} else if (log_cfg.foreground) {
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

int log_enabled(enum log_level lvl)
{
	return lvl != LOG_LVL_DEBUG || log_cfg.debug;
}

/* Several threads (lbd's workers, its main thread) may pass one call site at once, so the state is
 * changed with atomics and never a lock: whoever moves the window on reports what the last one
 * suppressed; a message racing with that move may count in either window. */
int log_rl_allow(struct log_rl *rl, uint32_t burst, enum log_level lvl)
{
	uint64_t now = clock_ms();
	uint64_t start = __atomic_load_n(&rl->window_start_ms, __ATOMIC_RELAXED);

	if (now - start >= 1000 && __atomic_compare_exchange_n(&rl->window_start_ms, &start, now, 0,
							       __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
		uint32_t suppressed = __atomic_exchange_n(&rl->suppressed, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&rl->in_window, 0, __ATOMIC_RELAXED);
		if (suppressed)
			log_msg(lvl, "(%u more like the previous message suppressed)", suppressed);
	}
	if (__atomic_fetch_add(&rl->in_window, 1, __ATOMIC_RELAXED) >= burst) {
		__atomic_fetch_add(&rl->suppressed, 1, __ATOMIC_RELAXED);
		return 0;
	}
	return 1;
}
