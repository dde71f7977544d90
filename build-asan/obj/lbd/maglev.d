build-asan/obj/lbd/maglev.o: lbd/maglev.c common/log.h lbd/maglev.h
common/log.h:
lbd/maglev.h:
