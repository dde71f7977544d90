build-asan/obj/lbd/reload.o: lbd/reload.c common/clock.h lbd/kdrop.h \
 common/config.h common/ipaddr.h common/ipaddr.h lbd/lbd.h lbd/flow.h \
 lbd/maglev.h lbd/ring.h lbd/sync.h lbd/frag.h lbd/health.h lbd/spsc.h \
 lbd/worker.h common/log.h common/startup.h common/auth.h common/config.h
common/clock.h:
lbd/kdrop.h:
common/config.h:
common/ipaddr.h:
common/ipaddr.h:
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
common/startup.h:
common/auth.h:
common/config.h:
