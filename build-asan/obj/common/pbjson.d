build-asan/obj/common/pbjson.o: common/pbjson.c common/pbjson.h
common/pbjson.h:
