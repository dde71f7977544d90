build-asan/obj/vrrpd/node.o: vrrpd/node.c common/clock.h common/log.h \
 common/startup.h common/auth.h common/config.h common/ipaddr.h \
 vrrpd/vrrpd.h common/auth.h common/config.h vrrpd/fsm.h common/ipaddr.h \
 common/ipc.h
common/clock.h:
common/log.h:
common/startup.h:
common/auth.h:
common/config.h:
common/ipaddr.h:
vrrpd/vrrpd.h:
common/auth.h:
common/config.h:
vrrpd/fsm.h:
common/ipaddr.h:
common/ipc.h:
