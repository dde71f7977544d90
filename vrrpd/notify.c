/* Notify hooks: an operator command run on each state change, asynchronously, killed after
 * notify_timeout. A slow or failing hook never delays the election. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "vrrpd.h"

struct notify_job {
	struct ev_loop *loop;
	ev_child child;
	ev_timer timeout;
	pid_t pid;
};

static void notify_done_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct notify_job *j = w->data;

	ev_child_stop(loop, &j->child);
	ev_timer_stop(loop, &j->timeout);
	if (WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) != 0)
		log_warn("notify hook (pid %d) exited with status %d", j->pid, WEXITSTATUS(w->rstatus));
	free(j);
}

static void notify_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct notify_job *j = w->data;

	log_warn("notify hook (pid %d) still running after its timeout: killed", j->pid);
	kill(-j->pid, SIGKILL);
}

void notify_run(struct vrrpd *v, const char *cmd, const char *state)
{
	struct notify_job *j;
	pid_t pid;

	if (!cmd[0])
		return;
	if (!(j = calloc(1, sizeof(*j))))
		return;
	pid = fork();
	if (pid < 0) {
		log_err("%s: fork: %s", __func__, strerror(errno));
		free(j);
		return;
	}
	if (pid == 0) {
		setsid();
		setenv("DSRLB_STATE", state, 1);
		setenv("DSRLB_NODE", v->node, 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	j->pid = pid;
	ev_child_init(&j->child, notify_done_cb, pid, 0);
	ev_timer_init(&j->timeout, notify_timeout_cb, v->cfg->notify_timeout_ms / 1000.0, 0.);
	j->child.data = j->timeout.data = j;
	ev_child_start(v->loop, &j->child);
	ev_timer_start(v->loop, &j->timeout);
}
