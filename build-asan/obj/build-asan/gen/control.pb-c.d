build-asan/obj/build-asan/gen/control.pb-c.o: \
 build-asan/gen/control.pb-c.c build-asan/gen/control.pb-c.h
build-asan/gen/control.pb-c.h:
