build-asan/obj/vrrpd/heartbeat.o: vrrpd/heartbeat.c vrrpd/heartbeat.h \
 common/config.h common/ipaddr.h build-asan/gen/heartbeat.pb-c.h \
 common/ipaddr.h
vrrpd/heartbeat.h:
common/config.h:
common/ipaddr.h:
build-asan/gen/heartbeat.pb-c.h:
common/ipaddr.h:
