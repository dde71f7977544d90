build-asan/obj/vrrpd/status.o: vrrpd/status.c common/clock.h \
 build-asan/gen/control.pb-c.h common/ctlauth.h common/config.h \
 common/ipaddr.h common/ipc.h common/log.h vrrpd/vrrpd.h common/auth.h \
 common/config.h vrrpd/fsm.h common/ipaddr.h common/ipc.h
common/clock.h:
build-asan/gen/control.pb-c.h:
common/ctlauth.h:
common/config.h:
common/ipaddr.h:
common/ipc.h:
common/log.h:
vrrpd/vrrpd.h:
common/auth.h:
common/config.h:
vrrpd/fsm.h:
common/ipaddr.h:
common/ipc.h:
