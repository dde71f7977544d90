/* Scrapes (scrape.h): two status requests on fresh control-socket connections, one to lbd and one to
 * vrrpd, each bounded by the deadline (ipc_client); a daemon that is gone, refuses or does not answer in
 * time is rendered as dsrlb_up 0 and the scrape still answers. The answers are kept packed until both
 * are in, then unpacked, rendered and freed in one function. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "control.pb-c.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"
#include "scrape.h"

enum { SCRAPE_LBD, SCRAPE_VRRPD, SCRAPE_N };
static const char *const scrape_names[SCRAPE_N] = { "lbd", "vrrpd" };

struct scrape_query {
	struct scrape *s;
	int which;
	char path[4200];
	struct ipc_client *client;
	uint8_t *resp;           /* packed answer; NULL: none */
	size_t resp_len;
	uint64_t sent_ns, done_ns;
	int was_up;              /* to log changes only */
};

struct scrape {
	struct ev_loop *loop;
	uint32_t timeout_ms;
	scrape_done_fn done;
	void *arg;
	struct scrape_query q[SCRAPE_N];
	int pending;             /* answers still to come; -1: no scrape running */
	ev_timer finish;         /* runs the end of a scrape outside the clients' callbacks */
	char *body;
	size_t body_len;
	uint64_t body_ms;        /* when body was rendered */
};

static void scrape_reply_cb(void *arg, const uint8_t *resp, size_t len)
{
	struct scrape_query *q = arg;
	struct scrape *s = q->s;

	q->done_ns = clock_ns();
	if (resp && (q->resp = malloc(len ? len : 1))) {
		memcpy(q->resp, resp, len);
		q->resp_len = len;
	}
	if (--s->pending == 0)
		ev_timer_start(s->loop, &s->finish);
}

/* A daemon's status from its unpacked answer (msg NULL: none, or it did not parse), or NULL; a daemon
 * that stops or starts answering is logged once. */
static const void *scrape_judge(struct scrape *s, struct scrape_query *q, const void *msg, int ok,
				const char *error, const void *status)
{
	char why[300];
	int up = msg && ok && status;

	if (up && !q->was_up)
		log_info("%s answers at %s", scrape_names[q->which], q->path);
	if (!up && q->was_up) {
		if (!q->resp)
			snprintf(why, sizeof(why), "no answer (not running, or none within %u ms)", s->timeout_ms);
		else
			snprintf(why, sizeof(why), "%s", !msg ? "the answer does not parse" :
				 error && error[0] ? error : "no status in the answer");
		log_warn("%s: %s: %s (dsrlb_up 0)", scrape_names[q->which], q->path, why);
	}
	q->was_up = up;
	return up ? status : NULL;
}

static void scrape_finish_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct scrape *s = w->data;
	struct scrape_query *lq = &s->q[SCRAPE_LBD], *vq = &s->q[SCRAPE_VRRPD];
	Dsrlb__LbdResponse *lr = NULL;
	Dsrlb__VrrpResponse *vr = NULL;
	struct metrics_input in = { 0 };
	struct prom m;

	for (int i = 0; i < SCRAPE_N; i++) {
		ipc_client_destroy(s->q[i].client);
		s->q[i].client = NULL;
	}
	if (lq->resp)
		lr = dsrlb__lbd_response__unpack(NULL, lq->resp_len, lq->resp);
	if (vq->resp)
		vr = dsrlb__vrrp_response__unpack(NULL, vq->resp_len, vq->resp);
	in.lbd = scrape_judge(s, lq, lr, lr && lr->ok, lr ? lr->error : NULL, lr ? lr->status : NULL);
	in.vrrpd = scrape_judge(s, vq, vr, vr && vr->ok, vr ? vr->error : NULL, vr ? vr->status : NULL);
	in.lbd_seconds = (double)(lq->done_ns - lq->sent_ns) / 1e9;
	in.vrrpd_seconds = (double)(vq->done_ns - vq->sent_ns) / 1e9;
	prom_init(&m);
	metrics_render(&m, &in);
	if (lr)
		dsrlb__lbd_response__free_unpacked(lr, NULL);
	if (vr)
		dsrlb__vrrp_response__free_unpacked(vr, NULL);
	for (int i = 0; i < SCRAPE_N; i++) {
		free(s->q[i].resp);
		s->q[i].resp = NULL;
	}
	free(s->body);
	s->body = prom_take(&m, &s->body_len);
	if (!s->body)
		log_rl(LOG_LVL_ERR, "%s: the metrics text could not be built (out of memory)", __func__);
	s->body_ms = clock_ms();
	s->pending = -1;
	s->done(s->arg, s->body, s->body_len);
}

/* The status request of each daemon, packed. */
static size_t scrape_pack(int which, uint8_t *buf)
{
	if (which == SCRAPE_LBD) {
		Dsrlb__LbdRequest q = DSRLB__LBD_REQUEST__INIT;
		q.cmd = DSRLB__LBD_CMD__LBD_CMD_STATUS;
		return dsrlb__lbd_request__pack(&q, buf);
	}
	Dsrlb__VrrpRequest q = DSRLB__VRRP_REQUEST__INIT;
	q.cmd = DSRLB__VRRP_CMD__VRRP_CMD_STATUS;
	return dsrlb__vrrp_request__pack(&q, buf);
}

void scrape_request(struct scrape *s)
{
	uint8_t buf[64];

	if (s->pending >= 0)
		return;
	if (s->body && clock_ms() - s->body_ms < SCRAPE_REUSE_MS) {
		s->done(s->arg, s->body, s->body_len);
		return;
	}
	s->pending = SCRAPE_N;
	for (int i = 0; i < SCRAPE_N; i++) {
		struct scrape_query *q = &s->q[i];
		size_t len = scrape_pack(i, buf);
		q->sent_ns = q->done_ns = clock_ns();
		q->client = ipc_client_create(s->loop, q->path, scrape_reply_cb, q);
		/* The callback comes exactly once for an accepted request, also when connecting fails. */
		if (!q->client || ipc_client_send(q->client, buf, len, (int)s->timeout_ms) < 0)
			s->pending--;
	}
	if (s->pending == 0)
		ev_timer_start(s->loop, &s->finish);
}

struct scrape *scrape_create(struct ev_loop *loop, const char *run_dir, uint32_t timeout_ms, scrape_done_fn done,
			     void *arg)
{
	struct scrape *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->loop = loop;
	s->timeout_ms = timeout_ms;
	s->done = done;
	s->arg = arg;
	s->pending = -1;
	for (int i = 0; i < SCRAPE_N; i++) {
		s->q[i].s = s;
		s->q[i].which = i;
		s->q[i].was_up = 1;   /* a daemon missing at start is logged */
		snprintf(s->q[i].path, sizeof(s->q[i].path), "%s/%s.sock", run_dir, scrape_names[i]);
	}
	ev_timer_init(&s->finish, scrape_finish_cb, 0., 0.);
	s->finish.data = s;
	return s;
}

void scrape_destroy(struct scrape *s)
{
	if (!s)
		return;
	ev_timer_stop(s->loop, &s->finish);
	for (int i = 0; i < SCRAPE_N; i++) {
		ipc_client_destroy(s->q[i].client);
		free(s->q[i].resp);
	}
	free(s->body);
	free(s);
}
