build-asan/obj/common/startup.o: common/startup.c common/log.h \
 common/privs.h common/config.h common/ipaddr.h common/startup.h \
 common/auth.h
common/log.h:
common/privs.h:
common/config.h:
common/ipaddr.h:
common/startup.h:
common/auth.h:
