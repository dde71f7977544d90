/* Logging shared by the daemons and lbctl: to stderr in the foreground, to syslog otherwise.
 * log_rl() rate-limits a message per call site so hostile input cannot flood the log. */
#ifndef DSR_LOG_H
#define DSR_LOG_H

#include <stdint.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *ident, int foreground, int debug);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A message of this level is written (debug only with -d). */
int log_enabled(enum log_level lvl);

/* A per-site limiter: at most `burst` messages per second; the count of suppressed ones is reported
 * with the next message that passes. Safe for several threads at one site (atomics, no lock). */
struct log_rl {
	uint64_t window_start_ms;
	uint32_t in_window;             /* may run past burst; reset when the window moves on */
	uint32_t suppressed;
};
int log_rl_allow(struct log_rl *rl, uint32_t burst, enum log_level lvl);

#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
/* A level that is not written costs no limiter state (a flood of malformed frames logs at debug). */
#define log_rl(lvl, ...) do { \
		static struct log_rl rl_; \
		if (log_enabled(lvl) && log_rl_allow(&rl_, 5, (lvl))) log_msg((lvl), __VA_ARGS__); \
	} while (0)

#endif
