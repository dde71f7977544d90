build-asan/obj/vrrpd/fsm.o: vrrpd/fsm.c vrrpd/fsm.h common/ipaddr.h
vrrpd/fsm.h:
common/ipaddr.h:
