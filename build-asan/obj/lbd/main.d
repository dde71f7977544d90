build-asan/obj/lbd/main.o: lbd/main.c lbd/announce.h common/config.h \
 common/ipaddr.h common/ipaddr.h common/clock.h common/auth.h \
 common/ipc.h lbd/kdrop.h lbd/lbd.h lbd/flow.h lbd/maglev.h lbd/ring.h \
 lbd/sync.h lbd/frag.h lbd/health.h lbd/spsc.h lbd/worker.h common/log.h \
 common/privs.h common/config.h common/sdnotify.h common/startup.h \
 common/auth.h
lbd/announce.h:
common/config.h:
common/ipaddr.h:
common/ipaddr.h:
common/clock.h:
common/auth.h:
common/ipc.h:
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
common/privs.h:
common/config.h:
common/sdnotify.h:
common/startup.h:
common/auth.h:
