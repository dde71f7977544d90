build-asan/obj/lbd/health.o: lbd/health.c common/clock.h lbd/health.h \
 common/ipaddr.h lbd/lbd.h common/config.h common/ipaddr.h lbd/flow.h \
 lbd/maglev.h lbd/ring.h lbd/sync.h lbd/frag.h lbd/spsc.h lbd/worker.h \
 common/log.h
common/clock.h:
lbd/health.h:
common/ipaddr.h:
lbd/lbd.h:
common/config.h:
common/ipaddr.h:
lbd/flow.h:
lbd/maglev.h:
lbd/ring.h:
lbd/sync.h:
lbd/frag.h:
lbd/spsc.h:
lbd/worker.h:
common/log.h:
