build-asan/obj/lbd/dp.o: lbd/dp.c lbd/lbd.h common/config.h \
 common/ipaddr.h lbd/flow.h common/ipaddr.h lbd/maglev.h lbd/ring.h \
 lbd/sync.h lbd/frag.h lbd/health.h lbd/spsc.h lbd/worker.h common/log.h
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
