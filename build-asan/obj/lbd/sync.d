build-asan/obj/lbd/sync.o: lbd/sync.c common/clock.h \
 build-asan/gen/control.pb-c.h lbd/lbd.h common/config.h common/ipaddr.h \
 lbd/flow.h common/ipaddr.h lbd/maglev.h lbd/ring.h lbd/sync.h lbd/frag.h \
 lbd/health.h lbd/spsc.h lbd/worker.h common/log.h common/startup.h \
 common/auth.h common/config.h lbd/sync_peer.h common/auth.h \
 build-asan/gen/sync.pb-c.h
common/clock.h:
build-asan/gen/control.pb-c.h:
lbd/lbd.h:
common/config.h:
common/ipaddr.h:
lbd/flow.h:
common/ipaddr.h:
lbd/maglev.h:
lbd/ring.h:
lbd/sync.h:
lbd/frag.h:
lbd/health.h:
lbd/spsc.h:
lbd/worker.h:
common/log.h:
common/startup.h:
common/auth.h:
common/config.h:
lbd/sync_peer.h:
common/auth.h:
build-asan/gen/sync.pb-c.h:
