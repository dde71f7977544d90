build-asan/obj/lbd/ctl.o: lbd/ctl.c lbd/announce.h common/config.h \
 common/ipaddr.h common/ipaddr.h common/clock.h \
 build-asan/gen/control.pb-c.h common/ctlauth.h common/config.h \
 common/ipc.h common/ipc.h lbd/lbd.h lbd/flow.h lbd/maglev.h lbd/ring.h \
 lbd/sync.h lbd/frag.h lbd/health.h lbd/spsc.h lbd/worker.h common/log.h
lbd/announce.h:
common/config.h:
common/ipaddr.h:
common/ipaddr.h:
common/clock.h:
build-asan/gen/control.pb-c.h:
common/ctlauth.h:
common/config.h:
common/ipc.h:
common/ipc.h:
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
