build-asan/obj/lbctl/checkbackend.o: lbctl/checkbackend.c \
 lbctl/checkbackend.h common/clock.h common/config.h common/ipaddr.h \
 common/ipaddr.h lbd/pkt.h
lbctl/checkbackend.h:
common/clock.h:
common/config.h:
common/ipaddr.h:
common/ipaddr.h:
lbd/pkt.h:
