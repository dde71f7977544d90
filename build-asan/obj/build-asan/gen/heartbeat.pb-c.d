build-asan/obj/build-asan/gen/heartbeat.pb-c.o: \
 build-asan/gen/heartbeat.pb-c.c build-asan/gen/heartbeat.pb-c.h
build-asan/gen/heartbeat.pb-c.h:
