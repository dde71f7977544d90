/* The systemd notify protocol (sd_notify(3)) without libsystemd: READY=1 once a daemon serves,
 * STATUS= with its role whenever that changes, WATCHDOG=1 from the main loop (so a hung loop misses the
 * watchdog and systemd restarts the daemon), STOPPING=1 on the way out. Everything is a no-op when
 * NOTIFY_SOCKET is not set (not started by systemd). The socket is opened and connected at
 * sdnotify_open(), before the daemon drops its privileges, so later sends need none. */
#ifndef DSR_SDNOTIFY_H
#define DSR_SDNOTIFY_H

#include <ev.h>
#include <stdint.h>

/* The role text for STATUS=, written into buf (called from the main loop's timer). */
typedef void (*sdnotify_status_fn)(void *ctx, char *buf, size_t len);

struct sdnotify {
	int fd;                         /* -1: no NOTIFY_SOCKET */
	uint64_t watchdog_us;           /* 0: no watchdog asked for */
	ev_timer timer;
	sdnotify_status_fn status;
	void *ctx;
	char last_status[128];
};

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID and unsets them (children do not inherit them). */
void sdnotify_open(struct sdnotify *n);
/* READY=1 with the first STATUS=, then the periodic timer: WATCHDOG=1 every half watchdog interval
 * (when asked for) and STATUS= when the role text changes (checked at least every 200 ms). */
void sdnotify_ready(struct sdnotify *n, struct ev_loop *loop, sdnotify_status_fn status, void *ctx);
/* One message ("STOPPING=1", "RELOADING=1", ...); 0 or -1. */
int sdnotify_send(const struct sdnotify *n, const char *msg);
void sdnotify_close(struct sdnotify *n, struct ev_loop *loop);

#endif
