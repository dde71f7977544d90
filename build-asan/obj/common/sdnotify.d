build-asan/obj/common/sdnotify.o: common/sdnotify.c common/log.h \
 common/sdnotify.h
common/log.h:
common/sdnotify.h:
