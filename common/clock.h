/* Monotonic time in milliseconds and nanoseconds. State machines take the time as an argument, so
 * unit tests drive them with a fake clock; only daemon glue calls these. */
#ifndef DSR_CLOCK_H
#define DSR_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_ms(void)
{
	return clock_ns() / 1000000ull;
}

#endif
