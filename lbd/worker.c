/* Forwarding workers: one thread per worker, each with its own RX/TX rings in one PACKET_FANOUT group
 * and its own part of the connection table. The fanout program (filter.c) pins each flow of either
 * family to one worker, and the main thread computes the same choice (worker_of) to place flows
 * received from the peer. A worker owns its thread, loop, lock and queues; it takes dp_lock for reading
 * and its lock once per batch and calls fwd.c for the batch (fwd_batch), which takes no lock. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "clock.h"
#include "ipaddr.h"
#include "lbd.h"
#include "log.h"

#define WORKER_HANDOFF_NS 2000000   /* how long a worker waits for the main thread to take its lock */

void worker_lock(struct lbd_worker *w)
{
	__atomic_add_fetch(&w->lock_waiters, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&w->lock);
	__atomic_sub_fetch(&w->lock_waiters, 1, __ATOMIC_SEQ_CST);
}

void worker_unlock(struct lbd_worker *w)
{
	pthread_mutex_unlock(&w->lock);
}

struct dp_table *worker_table(struct lbd_worker *w)
{
	return &w->fwd.tab;
}

struct lbd_syncq *worker_syncq(struct lbd_worker *w)
{
	return &w->fwd.syncq;
}

struct lbd_arpq *worker_arpq(struct lbd_worker *w)
{
	return &w->fwd.arpq;
}

/* The worker thread's own: dp_lock for reading and its lock, for one batch of work. */
static void worker_enter(struct lbd_worker *w)
{
	pthread_rwlock_rdlock(&w->fwd.l->dp_lock);
	pthread_mutex_lock(&w->lock);
}

/* A mutex is not handed to its waiter on unlock: under load the worker comes back for its lock within
 * microseconds, before the main thread (woken on another CPU) gets there, and could keep it from the
 * control plane for as long as the load lasts (vrrpd's refreshes would go unread and the fence trip).
 * So when the main thread waits, the worker lets it in first. */
static void worker_leave(struct lbd_worker *w)
{
	pthread_mutex_unlock(&w->lock);
	pthread_rwlock_unlock(&w->fwd.l->dp_lock);
	if (__atomic_load_n(&w->lock_waiters, __ATOMIC_SEQ_CST)) {
		uint64_t until = clock_ns() + WORKER_HANDOFF_NS;
		while (__atomic_load_n(&w->lock_waiters, __ATOMIC_SEQ_CST) && clock_ns() < until)
			cpu_relax();
	}
}

struct lbd_worker *worker_of(struct lbd *l, const struct ipaddr *src, const struct ipaddr *dst, uint16_t sport,
			     uint16_t dport)
{
	return &l->workers[filter_fanout_index(src, dst, ntohs(sport), ntohs(dport), l->n_workers)];
}

/* Periodic work of a worker on its own table: incremental expiry, and the sync refresh of live flows
 * (a full pass every third of the shortest timeout, 1 s .. 60 s). */
static void worker_expire_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lbd_worker *w = t->data;
	struct lbd *l = w->fwd.l;
	size_t scan = flow_max(w->flows) / 50 + 64;

	worker_enter(w);
	flow_expire(w->flows, clock_ms(), &l->timeouts, scan, fwd_flow_gone, &w->fwd);
	worker_leave(w);
}

static void worker_refresh_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct lbd_worker *w = t->data;
	struct lbd *l = w->fwd.l;
	uint32_t shortest = l->timeouts.tcp_syn_ms;
	struct flow *f;

	if (!l->sync || !__atomic_load_n(&l->active, __ATOMIC_RELAXED))
		return;
	worker_enter(w);
	if (l->timeouts.udp_ms < shortest)
		shortest = l->timeouts.udp_ms;
	uint32_t pass_ms = shortest / 3 < 1000 ? 1000 : shortest / 3 > 60000 ? 60000 : shortest / 3;
	size_t n = (size_t)flow_max(w->flows) * 100 / pass_ms + 64;
	for (size_t i = 0; i < n; i++) {
		f = flow_next(w->flows, &w->refresh_cursor);
		if (!f) {
			w->refresh_cursor = 0;
			break;
		}
		if (f->flags & LBD_FLOW_DIRTY) {
			f->flags &= (uint8_t)~LBD_FLOW_DIRTY;
			fwd_flow_refresh(&w->fwd, f);
		}
	}
	worker_leave(w);
}

/* One wakeup's work: dp_lock for reading and the worker's lock around fwd.c's batch. */
void worker_run_batch(struct lbd_worker *w)
{
	worker_enter(w);
	fwd_batch(&w->fwd, w->busy_wait);
	worker_leave(w);
}

static void worker_rx_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	worker_run_batch(io->data);
}

static void worker_stop_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void *worker_main(void *arg)
{
	struct lbd_worker *w = arg;
	sigset_t all;

	/* Signals belong to the main thread's loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	/* fwd_wait's naps are short: let them end on time (the default slack is 50 µs). */
	prctl(PR_SET_TIMERSLACK, 5000UL, 0, 0, 0);
	ev_run(w->loop, 0);
	return NULL;
}

static int worker_create(struct lbd *l, struct lbd_worker *w, unsigned id, const struct ring_params *rp)
{
	struct ring_params p = *rp;

	w->fwd.l = l;
	w->id = id;
	pthread_mutex_init(&w->lock, NULL);
	frag_init(&w->fwd.frags);
	spsc_init(&w->fwd.syncq.q, LBD_SYNCQ);
	spsc_init(&w->fwd.arpq.q, LBD_ARPQ);
	w->fwd.syncq.rec = calloc(LBD_SYNCQ, sizeof(*w->fwd.syncq.rec));
	w->flows = flow_create(l->cfg->flow_max / l->n_workers, cfg_has_ipv6(l->cfg));
	if (dp_table_init(&w->fwd.tab, w->flows) < 0 || !w->fwd.syncq.rec) {
		log_err("%s: out of memory", __func__);
		return -1;
	}
	p.fanout_group = l->n_workers > 1 ? l->fanout_id : 0;
	w->ring = w->fwd.ring = ring_open(&p);
	if (!w->ring)
		return -1;
	w->busy_wait = p.rx_version == TPACKET_V2;
	w->loop = ev_loop_new(EVFLAG_AUTO);
	if (!w->loop) {
		log_err("%s: ev_loop_new failed", __func__);
		return -1;
	}
	ev_io_init(&w->rx_io, worker_rx_cb, ring_rx_fd(w->ring), EV_READ);
	ev_timer_init(&w->expire_timer, worker_expire_cb, 0.1, 0.1);
	ev_timer_init(&w->refresh_timer, worker_refresh_cb, 0.1, 0.1);
	ev_async_init(&w->stop, worker_stop_cb);
	w->rx_io.data = w->expire_timer.data = w->refresh_timer.data = w->stop.data = w;
	/* libev runs the pending watchers of one priority last-in first-out and queues timers after input, so
	 * an expiry pass that is due would run before the frames that came with it (0.1-0.6 ms on a
	 * million-slot table): frames first. */
	ev_set_priority(&w->rx_io, EV_MAXPRI);
	ev_io_start(w->loop, &w->rx_io);
	ev_timer_start(w->loop, &w->expire_timer);
	ev_timer_start(w->loop, &w->refresh_timer);
	ev_async_start(w->loop, &w->stop);
	return 0;
}

/* Opens every worker's rings in order, so worker i is member i of the fanout group, then installs the
 * fanout program that makes that index meaningful. Runs privileged, before any thread starts. */
int worker_create_all(struct lbd *l, const struct ring_params *rp)
{
	struct sock_filter prog[128];
	size_t n;

	l->n_workers = l->cfg->workers ? l->cfg->workers : 1;
	l->workers = calloc(l->n_workers, sizeof(*l->workers));
	if (!l->workers)
		return -1;
	l->fanout_id = (int)((unsigned)getpid() & 0xffff);
	for (unsigned i = 0; i < l->n_workers; i++)
		if (worker_create(l, &l->workers[i], i, rp) < 0)
			return -1;
	if (l->n_workers > 1) {
		n = filter_fanout_build(l->n_workers, prog, 128);
		struct sock_fprog fp = { .len = (unsigned short)n, .filter = prog };
		if (!n || setsockopt(ring_rx_fd(l->workers[0].ring), SOL_PACKET, PACKET_FANOUT_DATA, &fp,
				     sizeof(fp)) < 0) {
			log_err("%s: PACKET_FANOUT_DATA: %s", __func__, strerror(errno));
			return -1;
		}
	}
	return 0;
}

int worker_start_all(struct lbd *l)
{
	for (unsigned i = 0; i < l->n_workers; i++) {
		struct lbd_worker *w = &l->workers[i];
		int e = pthread_create(&w->thread, NULL, worker_main, w);
		if (e) {
			log_err("%s: pthread_create: %s", __func__, strerror(e));
			return -1;
		}
		w->started = 1;
	}
	return 0;
}

void worker_stop_all(struct lbd *l)
{
	for (unsigned i = 0; l->workers && i < l->n_workers; i++) {
		struct lbd_worker *w = &l->workers[i];
		if (w->started) {
			ev_async_send(w->loop, &w->stop);
			pthread_join(w->thread, NULL);
			w->started = 0;
		}
	}
}

void worker_destroy_all(struct lbd *l)
{
	if (!l->workers)
		return;
	worker_stop_all(l);
	for (unsigned i = 0; i < l->n_workers; i++) {
		struct lbd_worker *w = &l->workers[i];
		if (w->loop)
			ev_loop_destroy(w->loop);
		ring_close(w->ring);
		dp_table_fini(&w->fwd.tab);
		flow_destroy(w->flows);
		free(w->fwd.syncq.rec);
		pthread_mutex_destroy(&w->lock);
	}
	free(l->workers);
	l->workers = NULL;
}

static void worker_add_counters(struct lbd_counters *sum, const struct lbd_counters *c)
{
	const uint64_t *src = (const uint64_t *)c;
	uint64_t *dst = (uint64_t *)sum;

	for (size_t i = 0; i < sizeof(*c) / sizeof(uint64_t); i++)
		dst[i] += src[i];
}

void worker_counters(struct lbd *l, struct lbd_counters *sum)
{
	*sum = l->ctr;
	for (unsigned i = 0; i < l->n_workers; i++) {
		worker_lock(&l->workers[i]);
		worker_add_counters(sum, &l->workers[i].fwd.ctr);
		worker_unlock(&l->workers[i]);
	}
}

uint64_t worker_slot_forwarded(struct lbd *l, uint16_t slot, uint64_t *bytes)
{
	uint64_t n = 0;

	*bytes = 0;
	for (unsigned i = 0; i < l->n_workers; i++) {
		worker_lock(&l->workers[i]);
		n += l->workers[i].fwd.tab.slot_fwd[slot];
		*bytes += l->workers[i].fwd.tab.slot_bytes[slot];
		worker_unlock(&l->workers[i]);
	}
	return n;
}

uint64_t worker_slot_flows(struct lbd *l, uint16_t slot)
{
	int64_t n = 0;

	for (unsigned i = 0; i < l->n_workers; i++) {
		worker_lock(&l->workers[i]);
		n += l->workers[i].fwd.tab.slot_flows[slot];
		worker_unlock(&l->workers[i]);
	}
	return n > 0 ? (uint64_t)n : 0;
}

uint64_t worker_flow_count(struct lbd *l)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < l->n_workers; i++) {
		worker_lock(&l->workers[i]);
		n += flow_count(l->workers[i].flows);
		worker_unlock(&l->workers[i]);
	}
	return n;
}

void worker_ring_stats(struct lbd *l, struct ring_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < l->n_workers; i++) {
		struct ring_stats rs;
		worker_lock(&l->workers[i]);
		ring_stats(l->workers[i].ring, &rs);
		worker_unlock(&l->workers[i]);
		sum->rx_drops += rs.rx_drops;
		sum->rx_freeze += rs.rx_freeze;
		sum->tx_full += rs.tx_full;
		sum->tx_wrong_format += rs.tx_wrong_format;
		sum->tx_kicks += rs.tx_kicks;
	}
}
