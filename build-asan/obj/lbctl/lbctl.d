build-asan/obj/lbctl/lbctl.o: lbctl/lbctl.c common/auth.h common/clock.h \
 lbctl/checkbackend.h build-asan/gen/control.pb-c.h common/ipc.h \
 common/pbjson.h
common/auth.h:
common/clock.h:
lbctl/checkbackend.h:
build-asan/gen/control.pb-c.h:
common/ipc.h:
common/pbjson.h:
