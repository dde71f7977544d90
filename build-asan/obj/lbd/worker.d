build-asan/obj/lbd/worker.o: lbd/worker.c common/clock.h common/ipaddr.h \
 lbd/lbd.h common/config.h common/ipaddr.h lbd/flow.h lbd/maglev.h \
 lbd/ring.h lbd/sync.h lbd/frag.h lbd/health.h lbd/spsc.h lbd/worker.h \
 common/log.h
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
common/log.h:
