/* The forwarding workers as the main thread's modules see them (sync, ctl, arp, main): start and stop
 * them, find the worker that owns a flow, lock a worker to use its table, drain its queues, read its
 * counters. What a worker does with a frame is fwd.c's; the fields of struct lbd_worker are worker.c's. */
#ifndef DSR_WORKER_H
#define DSR_WORKER_H

#include <stdint.h>

struct lbd;
struct lbd_worker;
struct lbd_counters;
struct ring_params;
struct ring_stats;
struct dp_table;
struct lbd_syncq;
struct lbd_arpq;

int worker_create_all(struct lbd *l, const struct ring_params *rp);
int worker_start_all(struct lbd *l);
void worker_stop_all(struct lbd *l);      /* joins the threads; their tables stay */
void worker_destroy_all(struct lbd *l);

/* The worker that receives (and so owns) the flow of this client->VIP tuple (network order). */
struct lbd_worker *worker_of(struct lbd *l, const struct ipaddr *src, const struct ipaddr *dst, uint16_t sport,
			     uint16_t dport);
/* The main thread's access to a worker's table (after dp_lock, if it takes that): apply or read flows
 * between worker_lock and worker_unlock, through dp.c's dp_flow_* and flow.h. */
void worker_lock(struct lbd_worker *w);
void worker_unlock(struct lbd_worker *w);
struct dp_table *worker_table(struct lbd_worker *w);
/* The consumer side of a worker's queues (lbd/spsc.h): no lock. */
struct lbd_syncq *worker_syncq(struct lbd_worker *w);
struct lbd_arpq *worker_arpq(struct lbd_worker *w);

/* One wakeup's work on the worker's RX ring, as its loop runs it (the fuzz target calls it directly). */
void worker_run_batch(struct lbd_worker *w);

/* Sums over the workers, each read under its lock; worker_counters adds the main thread's own. */
void worker_counters(struct lbd *l, struct lbd_counters *sum);
uint64_t worker_slot_forwarded(struct lbd *l, uint16_t slot, uint64_t *bytes);
uint64_t worker_slot_flows(struct lbd *l, uint16_t slot);
uint64_t worker_flow_count(struct lbd *l);
void worker_ring_stats(struct lbd *l, struct ring_stats *sum);

#endif
