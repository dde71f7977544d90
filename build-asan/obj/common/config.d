build-asan/obj/common/config.o: common/config.c common/config.h \
 common/ipaddr.h
common/config.h:
common/ipaddr.h:
