build-asan/obj/common/ipaddr.o: common/ipaddr.c common/ipaddr.h
common/ipaddr.h:
