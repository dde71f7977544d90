build-asan/obj/common/log.o: common/log.c common/clock.h common/log.h
common/clock.h:
common/log.h:
