build-asan/obj/lbd/sync_table.o: lbd/sync_table.c common/auth.h \
 common/clock.h common/ipaddr.h lbd/lbd.h common/config.h common/ipaddr.h \
 lbd/flow.h lbd/maglev.h lbd/ring.h lbd/sync.h lbd/frag.h lbd/health.h \
 lbd/spsc.h lbd/worker.h lbd/sync_peer.h build-asan/gen/sync.pb-c.h
common/auth.h:
common/clock.h:
common/ipaddr.h:
lbd/lbd.h:
common/config.h:
common/ipaddr.h:
lbd/flow.h:
lbd/maglev.h:
lbd/ring.h:
lbd/sync.h:
lbd/frag.h:
lbd/health.h:
lbd/spsc.h:
lbd/worker.h:
lbd/sync_peer.h:
build-asan/gen/sync.pb-c.h:
