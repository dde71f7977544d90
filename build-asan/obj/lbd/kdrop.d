build-asan/obj/lbd/kdrop.o: lbd/kdrop.c common/ipaddr.h lbd/kdrop.h \
 common/config.h common/ipaddr.h common/log.h common/privs.h \
 common/config.h
common/ipaddr.h:
lbd/kdrop.h:
common/config.h:
common/ipaddr.h:
common/log.h:
common/privs.h:
common/config.h:
