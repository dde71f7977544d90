build-asan/obj/build-asan/gen/sync.pb-c.o: build-asan/gen/sync.pb-c.c \
 build-asan/gen/sync.pb-c.h
build-asan/gen/sync.pb-c.h:
