/* Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4) with weights: maps a flow hash to a
 * backend so that both balancer nodes agree without talking, and a backend-set change moves few flows.
 * The table depends only on the (id, weight) set, never on array order, process or host. */
#ifndef DSR_MAGLEV_H
#define DSR_MAGLEV_H

#include <stddef.h>
#include <stdint.h>

#define MAGLEV_SIZE_DEFAULT  65537u     /* prime; the paper's M */
#define MAGLEV_SIZE_MAX      16777259u  /* a prime just above 2^24: 32 MiB of table at most */
#define MAGLEV_MAX_BACKENDS  4096u
#define MAGLEV_NONE          0xffffu    /* no backend: n == 0 or every weight is 0 */

struct maglev;

/* size must be a prime in [MAGLEV_SIZE_DEFAULT, MAGLEV_SIZE_MAX]; otherwise NULL with errno = EINVAL.
 * Allocates the table and the scratch for MAGLEV_MAX_BACKENDS, so maglev_build never allocates.
 * The fresh table maps everything to MAGLEV_NONE. */
struct maglev *maglev_create(uint32_t size);
void maglev_destroy(struct maglev *m);

/* Rebuilds the table in place. ids[i] is backend i's stable identity (dp.c: its IPv4 address, or a fold of its IPv6 one);
 * weights[i] is 0..65535, 0 = no entries. Entries become indices into these arrays; each backend gets
 * size * weight / (sum of weights) entries, to within one. Returns 0, or -1 with errno = EINVAL when m is NULL,
 * n > MAGLEV_MAX_BACKENDS, an array is NULL with n > 0, a weight exceeds 65535 or an id repeats.
 * On error the previous table is left untouched. Not safe against a concurrent maglev_lookup on the same
 * table: build a second instance and swap the pointer. */
int maglev_build(struct maglev *m, const uint32_t *ids, const uint32_t *weights, size_t n);

/* table[hash % size]: an index into the arrays of the last successful build, or MAGLEV_NONE. */
uint16_t maglev_lookup(const struct maglev *m, uint32_t hash);
uint32_t maglev_size(const struct maglev *m);

#endif
