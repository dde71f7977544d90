/* A bounded single-producer, single-consumer queue of indices: the producer (a forwarding worker) fills
 * the slot spsc_push_slot names and publishes it with spsc_push; the consumer (the main thread) reads
 * what spsc_peek says is ready and frees it with spsc_pop. The caller keeps the entries in an array of
 * `size` elements (a power of two) beside the queue. No lock, no wait, no allocation.
 *
 * Ordering: each side stores its own index with release and loads the other's with acquire, so the
 * consumer sees an entry's contents once it sees the index that publishes it, and the producer reuses a
 * slot only after the consumer is done with it. Indices run free and wrap; head - tail is the fill.
 *
 * Waking a sleeping consumer without a wakeup per entry: the producer wakes it only when it pushed into
 * an empty queue (spsc_pushed_into_empty), and the consumer, after draining, looks again
 * (spsc_drained). Both carry a full fence: the producer stores head then loads tail, the consumer stores
 * tail then loads head, so at least one of them sees the other and an entry is never stranded. */
#ifndef DSR_SPSC_H
#define DSR_SPSC_H

#include <stdint.h>

#define SPSC_FULL UINT32_MAX

struct spsc {
	uint32_t head;          /* next entry to fill: written by the producer only */
	uint32_t tail;          /* next entry to read: written by the consumer only */
	uint32_t size;          /* entries, a power of two */
};

static inline void spsc_init(struct spsc *q, uint32_t size)
{
	q->head = q->tail = 0;
	q->size = size;
}

/* The array index of entry number i (a head or tail value). */
static inline uint32_t spsc_slot(const struct spsc *q, uint32_t i)
{
	return i & (q->size - 1);
}

/* Producer: the array index to fill next, or SPSC_FULL when the consumer is a whole queue behind. */
static inline uint32_t spsc_push_slot(const struct spsc *q)
{
	if (q->head - __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE) >= q->size)
		return SPSC_FULL;
	return spsc_slot(q, q->head);
}

/* Producer: publishes the entry filled at spsc_push_slot. */
static inline void spsc_push(struct spsc *q)
{
	__atomic_store_n(&q->head, q->head + 1, __ATOMIC_RELEASE);
}

/* Producer, right after spsc_push: 1 when the queue was empty before that entry, so the consumer may
 * be asleep and must be woken. */
static inline int spsc_pushed_into_empty(const struct spsc *q)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return q->head - 1 == __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
}

/* Consumer: how many entries are ready, from entry number *first on. */
static inline uint32_t spsc_peek(const struct spsc *q, uint32_t *first)
{
	*first = q->tail;
	return __atomic_load_n(&q->head, __ATOMIC_ACQUIRE) - q->tail;
}

/* Consumer: frees the n oldest entries for the producer. */
static inline void spsc_pop(struct spsc *q, uint32_t n)
{
	__atomic_store_n(&q->tail, q->tail + n, __ATOMIC_RELEASE);
}

/* Consumer, after popping: 1 when nothing is left. A producer that found the queue not empty did not
 * wake us; this second look (after a full fence) is what sees its entry. */
static inline int spsc_drained(const struct spsc *q)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return q->tail == __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
}

#endif
