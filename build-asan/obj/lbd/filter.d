build-asan/obj/lbd/filter.o: lbd/filter.c common/ipaddr.h lbd/lbd.h \
 common/config.h common/ipaddr.h lbd/flow.h lbd/maglev.h lbd/ring.h \
 lbd/sync.h lbd/frag.h lbd/health.h lbd/spsc.h lbd/worker.h
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
