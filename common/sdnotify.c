/* sd_notify(3) protocol over a datagram socket (common/sdnotify.h). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sdnotify.h"

#define SDNOTIFY_STATUS_S 0.2

void sdnotify_open(struct sdnotify *n)
{
	const char *path = getenv("NOTIFY_SOCKET"), *wd = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;

	memset(n, 0, sizeof(*n));
	n->fd = -1;
	if (wd && (!pid || strtol(pid, NULL, 10) == (long)getpid()))
		n->watchdog_us = strtoull(wd, NULL, 10);
	if (path && (path[0] == '/' || path[0] == '@') && (len = strlen(path)) < sizeof(sa.sun_path)) {
		memcpy(sa.sun_path, path, len);
		if (path[0] == '@')
			sa.sun_path[0] = '\0';          /* abstract namespace */
		n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (n->fd >= 0 && connect(n->fd, (struct sockaddr *)&sa,
					  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
			log_warn("NOTIFY_SOCKET %s: %s", path, strerror(errno));
			close(n->fd);
			n->fd = -1;
		}
	} else if (path) {
		log_warn("NOTIFY_SOCKET '%s' is not a socket path", path);
	}
	if (n->fd < 0)
		n->watchdog_us = 0;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

int sdnotify_send(const struct sdnotify *n, const char *msg)
{
	if (n->fd < 0)
		return 0;
	return send(n->fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -1 : 0;
}

/* STATUS= when the role text changed; WATCHDOG=1 on every tick when a watchdog is set. */
static void sdnotify_tick(struct sdnotify *n, int watchdog)
{
	char st[sizeof(n->last_status)], msg[sizeof(st) + 32];

	st[0] = '\0';
	if (n->status)
		n->status(n->ctx, st, sizeof(st));
	if (strcmp(st, n->last_status) != 0) {
		memcpy(n->last_status, st, sizeof(st));
		snprintf(msg, sizeof(msg), "STATUS=%s%s", st, watchdog ? "\nWATCHDOG=1" : "");
		sdnotify_send(n, msg);
	} else if (watchdog) {
		sdnotify_send(n, "WATCHDOG=1");
	}
}

static void sdnotify_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct sdnotify *n = t->data;

	sdnotify_tick(n, n->watchdog_us != 0);
}

void sdnotify_ready(struct sdnotify *n, struct ev_loop *loop, sdnotify_status_fn status, void *ctx)
{
	char msg[sizeof(n->last_status) + 32];
	double every = SDNOTIFY_STATUS_S;

	if (n->fd < 0)
		return;
	n->status = status;
	n->ctx = ctx;
	if (status)
		status(ctx, n->last_status, sizeof(n->last_status));
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s%s", n->last_status, n->watchdog_us ? "\nWATCHDOG=1" : "");
	if (sdnotify_send(n, msg) < 0)
		log_warn("sd_notify READY=1: %s", strerror(errno));
	if (n->watchdog_us && n->watchdog_us / 2e6 < every)
		every = n->watchdog_us / 2e6;
	ev_timer_init(&n->timer, sdnotify_timer_cb, every, every);
	n->timer.data = n;
	ev_timer_start(loop, &n->timer);
	ev_unref(loop);         /* the timer alone does not keep the loop running */
}

void sdnotify_close(struct sdnotify *n, struct ev_loop *loop)
{
	if (n->fd < 0)
		return;
	if (ev_is_active(&n->timer)) {
		ev_ref(loop);
		ev_timer_stop(loop, &n->timer);
	}
	close(n->fd);
	n->fd = -1;
}
