build-asan/obj/vrrpd/lbdlink.o: vrrpd/lbdlink.c common/clock.h \
 build-asan/gen/control.pb-c.h common/log.h vrrpd/vrrpd.h common/auth.h \
 common/config.h common/ipaddr.h vrrpd/fsm.h common/ipaddr.h common/ipc.h
common/clock.h:
build-asan/gen/control.pb-c.h:
common/log.h:
vrrpd/vrrpd.h:
common/auth.h:
common/config.h:
common/ipaddr.h:
vrrpd/fsm.h:
common/ipaddr.h:
common/ipc.h:
