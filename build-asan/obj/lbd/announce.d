build-asan/obj/lbd/announce.o: lbd/announce.c lbd/announce.h \
 common/config.h common/ipaddr.h common/ipaddr.h common/clock.h \
 lbd/kdrop.h lbd/lbd.h lbd/flow.h lbd/maglev.h lbd/ring.h lbd/sync.h \
 lbd/frag.h lbd/health.h lbd/spsc.h lbd/worker.h common/log.h
lbd/announce.h:
common/config.h:
common/ipaddr.h:
common/ipaddr.h:
common/clock.h:
lbd/kdrop.h:
lbd/lbd.h:
lbd/flow.h:
lbd/maglev.h:
lbd/ring.h:
lbd/sync.h:
lbd/frag.h:
lbd/health.h:
lbd/spsc.h:
lbd/worker.h:
common/log.h:
