build-asan/obj/lbd/flow.o: lbd/flow.c lbd/flow.h common/ipaddr.h \
 common/log.h
lbd/flow.h:
common/ipaddr.h:
common/log.h:
