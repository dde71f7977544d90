build-asan/obj/vrrpd/advert.o: vrrpd/advert.c common/clock.h \
 vrrpd/heartbeat.h common/config.h common/ipaddr.h \
 build-asan/gen/heartbeat.pb-c.h common/ipaddr.h common/log.h \
 vrrpd/vrrpd.h common/auth.h vrrpd/fsm.h common/ipc.h
common/clock.h:
vrrpd/heartbeat.h:
common/config.h:
common/ipaddr.h:
build-asan/gen/heartbeat.pb-c.h:
common/ipaddr.h:
common/log.h:
vrrpd/vrrpd.h:
common/auth.h:
vrrpd/fsm.h:
common/ipc.h:
