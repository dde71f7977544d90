/* Connection-state sync with the other lbd's of the cluster (a pair's peer, or every other node of a
 * mesh in mode = ecmp): the flows this node creates, changes and deletes stream to each peer over one
 * TCP connection of sealed messages; on (re)connect each side asks for the other's whole table in
 * chunks. Bounded memory; never blocks forwarding. The parts: sync.c (the mesh), sync_peer.c (one
 * peer), sync_table.c (the tables); lbd/sync_peer.h inside. */
#ifndef DSR_SYNC_H
#define DSR_SYNC_H

#include <stdint.h>

#include "flow.h"

struct lbd;
struct sync_ctx;
struct Dsrlb__SyncStatus;

/* NULL with sync disabled or no other node is not an error: check lbd->cfg. */
struct sync_ctx *sync_create(struct lbd *l);
void sync_destroy(struct sync_ctx *s);
/* After a reload: the new keys (the context takes them over); address or port changes need a restart. */
struct auth_keyring;
void sync_reload(struct sync_ctx *s, struct auth_keyring *keys);

/* Safe to preempt (vrrpd) or announce (ecmp): no peer, or sync_timeout passed, or one peer's bulk is
 * complete and no established peer's is still under way. */
int sync_ready(const struct sync_ctx *s);
const char *sync_state_str(const struct sync_ctx *s);
/* Fills a status message; strings point into s (valid until the next call). */
void sync_status(struct sync_ctx *s, struct Dsrlb__SyncStatus *st);

#endif
