build-asan/obj/vrrpd/main.o: vrrpd/main.c common/clock.h common/log.h \
 common/privs.h common/config.h common/ipaddr.h common/sdnotify.h \
 common/startup.h common/auth.h build-asan/gen/control.pb-c.h \
 vrrpd/vrrpd.h common/auth.h common/config.h vrrpd/fsm.h common/ipaddr.h \
 common/ipc.h
common/clock.h:
common/log.h:
common/privs.h:
common/config.h:
common/ipaddr.h:
common/sdnotify.h:
common/startup.h:
common/auth.h:
build-asan/gen/control.pb-c.h:
vrrpd/vrrpd.h:
common/auth.h:
common/config.h:
vrrpd/fsm.h:
common/ipaddr.h:
common/ipc.h:
