build-asan/obj/common/privs.o: common/privs.c common/log.h common/privs.h \
 common/config.h common/ipaddr.h
common/log.h:
common/privs.h:
common/config.h:
common/ipaddr.h:
