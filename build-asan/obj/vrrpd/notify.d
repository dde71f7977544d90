build-asan/obj/vrrpd/notify.o: vrrpd/notify.c common/log.h vrrpd/vrrpd.h \
 common/auth.h common/config.h common/ipaddr.h vrrpd/fsm.h \
 common/ipaddr.h common/ipc.h
common/log.h:
vrrpd/vrrpd.h:
common/auth.h:
common/config.h:
common/ipaddr.h:
vrrpd/fsm.h:
common/ipaddr.h:
common/ipc.h:
