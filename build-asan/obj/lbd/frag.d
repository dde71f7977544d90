build-asan/obj/lbd/frag.o: lbd/frag.c lbd/frag.h common/ipaddr.h
lbd/frag.h:
common/ipaddr.h:
