build-asan/obj/common/ipc.o: common/ipc.c common/clock.h common/ipc.h \
 common/log.h
common/clock.h:
common/ipc.h:
common/log.h:
