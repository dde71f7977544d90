build-asan/obj/lbd/pkt.o: lbd/pkt.c lbd/pkt.h common/ipaddr.h
lbd/pkt.h:
common/ipaddr.h:
