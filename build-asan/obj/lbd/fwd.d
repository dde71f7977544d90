build-asan/obj/lbd/fwd.o: lbd/fwd.c common/clock.h lbd/frag.h \
 common/ipaddr.h lbd/lbd.h common/config.h common/ipaddr.h lbd/flow.h \
 lbd/maglev.h lbd/ring.h lbd/sync.h lbd/health.h lbd/spsc.h lbd/worker.h \
 common/log.h lbd/pkt.h
common/clock.h:
lbd/frag.h:
common/ipaddr.h:
lbd/lbd.h:
common/config.h:
common/ipaddr.h:
lbd/flow.h:
lbd/maglev.h:
lbd/ring.h:
lbd/sync.h:
lbd/health.h:
lbd/spsc.h:
lbd/worker.h:
common/log.h:
lbd/pkt.h:
