build-asan/obj/lbd/ring.o: lbd/ring.c common/log.h lbd/ring.h
common/log.h:
lbd/ring.h:
