build-asan/obj/common/ctlauth.o: common/ctlauth.c common/ctlauth.h \
 common/config.h common/ipaddr.h common/ipc.h
common/ctlauth.h:
common/config.h:
common/ipaddr.h:
common/ipc.h:
