/* Keeps only the capabilities a daemon still needs once its sockets are open. */
#ifndef DSR_PRIVS_H
#define DSR_PRIVS_H

#include <stdint.h>

/* keep: bitmask of CAP_* numbers (1ull << CAP_NET_RAW | ...). Returns 0, or -1 (logged). */
int privs_keep_only(uint64_t keep);

#endif
