build-asan/obj/common/auth.o: common/auth.c common/auth.h \
 build-asan/gen/heartbeat.pb-c.h
common/auth.h:
build-asan/gen/heartbeat.pb-c.h:
