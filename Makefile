# dsrlb build. `make` builds lbd, vrrpd, lbctl and dsrlb-exporter into build/; protobuf-c code is generated into
# build/gen from proto/*.proto and never committed. `make check` installs missing Debian packages,
# builds, runs the unit tests (plain and under ASan+UBSan), replays the fuzz corpus and runs the
# network-namespace suites.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= gcc
B       := build
GEN     := $(B)/gen

# The version is written in one place, the file VERSION.
VERSION := $(shell cat VERSION)
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation \
           -D_GNU_SOURCE -I. -Icommon -I$(GEN) -DDSRLB_VERSION='"$(VERSION)"'
LDLIBS  := -lev -lsodium -lprotobuf-c -linih -lnftables -lmnl -lpthread -lm
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

PROTOS      := $(wildcard proto/*.proto)
PROTO_C     := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PROTO_H     := $(PROTO_C:.c=.h)
COMMON_SRC  := $(wildcard common/*.c) $(PROTO_C)
LBD_SRC     := $(wildcard lbd/*.c)
VRRPD_SRC   := $(wildcard vrrpd/*.c)
LBCTL_SRC   := $(wildcard lbctl/*.c)
EXPORTER_SRC := $(wildcard exporter/*.c)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)

COMMON_OBJ := $(addprefix $(B)/obj/,$(patsubst %.c,%.o,$(COMMON_SRC)))
LBD_OBJ    := $(addprefix $(B)/obj/,$(LBD_SRC:.c=.o))
VRRPD_OBJ  := $(addprefix $(B)/obj/,$(VRRPD_SRC:.c=.o))
LBCTL_OBJ  := $(addprefix $(B)/obj/,$(LBCTL_SRC:.c=.o))
EXPORTER_OBJ := $(addprefix $(B)/obj/,$(EXPORTER_SRC:.c=.o))
# Unit tests link every module except the daemons' main files.
LIB_OBJ    := $(COMMON_OBJ) $(filter-out %/main.o,$(LBD_OBJ) $(VRRPD_OBJ) $(EXPORTER_OBJ))
UNIT_BIN   := $(patsubst tests/unit/%.c,$(B)/unit/%,$(UNIT_SRC))
UNIT_SAN   := $(patsubst tests/unit/%.c,$(B)/unit-san/%,$(UNIT_SRC))

BINS := $(B)/lbd $(B)/vrrpd $(B)/lbctl $(B)/dsrlb-exporter

.PHONY: calls all deps check unit unit-san fuzz fuzz-replay fuzz-corpus lab bench soak demo demo-up demo-down install clean \
	man deb deb-check
.SECONDARY:

all: $(BINS)

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	protoc-c --proto_path=proto --c_out=$(GEN) $<

$(B)/obj/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/san/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -Wno-error -MMD -MP -c -o $@ $<

$(B)/lbd: $(LBD_OBJ) $(COMMON_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(B)/vrrpd: $(VRRPD_OBJ) $(COMMON_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(B)/lbctl: $(LBCTL_OBJ) $(COMMON_OBJ) $(B)/obj/lbd/pkt.o
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(B)/dsrlb-exporter: $(EXPORTER_OBJ) $(COMMON_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Module names are unique across the tree, so one archive per flavour serves every unit test.
$(B)/libdsrlb.a: $(LIB_OBJ)
	@rm -f $@; ar rcs $@ $^
$(B)/libdsrlb-san.a: $(patsubst $(B)/obj/%,$(B)/san/%,$(LIB_OBJ))
	@rm -f $@; ar rcs $@ $^
$(B)/unit/%: $(B)/obj/tests/unit/%.o $(B)/libdsrlb.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka
$(B)/unit-san/%: $(B)/san/tests/unit/%.o $(B)/libdsrlb-san.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS) -lcmocka
# The health checks need the config and the service table (dp, maglev, flow), not the packet path: their
# test links only those, so a call into fwd, ring, sync or worker fails to link here.
UNIT_HEALTH_OBJ := $(addprefix $(B)/obj/lbd/,health.o dp.o maglev.o flow.o) $(COMMON_OBJ)
$(B)/unit/test_health: $(B)/obj/tests/unit/test_health.o $(UNIT_HEALTH_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka
$(B)/unit-san/test_health: $(B)/san/tests/unit/test_health.o $(patsubst $(B)/obj/%,$(B)/san/%,$(UNIT_HEALTH_OBJ))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS) -lcmocka

deps:
	@./scripts/deps.sh

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done
unit-san: $(UNIT_SAN)
	@set -e; for t in $(UNIT_SAN); do echo "== $$t (asan+ubsan)"; \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; done

# Fuzzing (tests/fuzz, docs/fuzzing.md). One target per tests/fuzz/fuzz_NAME.c, its seed corpus in
# tests/fuzz/corpus/NAME. `make fuzz` builds the libFuzzer binaries with clang and fuzzes each target for
# FUZZ_TIME seconds (new inputs go to build/fuzz/corpus, findings to build/fuzz/artifacts); `make
# fuzz-replay` builds the same targets with gcc, ASan+UBSan and a plain main() and replays every corpus
# file once, a regression run of seconds; `make fuzz-corpus` rewrites the generated seeds.
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 60
FUZZ_FLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
		-Wno-unknown-warning-option -Wno-error
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_BIN     := $(addprefix $(B)/fuzz/fuzz_,$(FUZZ_TARGETS))
REPLAY_BIN   := $(addprefix $(B)/fuzz-replay/fuzz_,$(FUZZ_TARGETS))

$(B)/fuzzobj/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<
$(B)/libdsrlb-fuzz.a: $(patsubst $(B)/obj/%,$(B)/fuzzobj/%,$(LIB_OBJ))
	@rm -f $@; ar rcs $@ $^
$(B)/fuzz/fuzz_%: $(B)/fuzzobj/tests/fuzz/fuzz_%.o $(B)/fuzzobj/tests/fuzz/fuzz.o $(B)/libdsrlb-fuzz.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)
$(B)/fuzz-replay/fuzz_%: $(B)/san/tests/fuzz/fuzz_%.o $(B)/san/tests/fuzz/fuzz.o $(B)/san/tests/fuzz/replay.o \
			 $(B)/libdsrlb-san.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)
$(B)/fuzz-corpus: $(B)/obj/tests/fuzz/corpus_gen.o $(B)/obj/tests/fuzz/fuzz.o $(B)/libdsrlb.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

fuzz: deps $(FUZZ_BIN)
	@set -e; mkdir -p $(B)/fuzz/artifacts; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(B)/fuzz/corpus/$$t; echo "== fuzz_$$t ($(FUZZ_TIME) s)"; \
		if ! nice -n 10 $(B)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix=$(B)/fuzz/artifacts/$$t- \
			$(B)/fuzz/corpus/$$t tests/fuzz/corpus/$$t >$(B)/fuzz/$$t.log 2>&1; then \
			tail -n 40 $(B)/fuzz/$$t.log; echo "fuzz_$$t: finding in $(B)/fuzz/artifacts"; exit 1; fi; \
		grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' $(B)/fuzz/$$t.log; \
	done
fuzz-replay: $(REPLAY_BIN)
	@set -e; for t in $(FUZZ_TARGETS); do \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
			$(B)/fuzz-replay/fuzz_$$t tests/fuzz/corpus/$$t; done
fuzz-corpus: $(B)/fuzz-corpus
	$(B)/fuzz-corpus tests/fuzz/corpus

# The network suites, then the suites whose lbd forwards again with two forwarding workers
# (DSRLB_WORKERS adds `workers = 2` to the configs the suites write). Left out of that pass: tests of
# config error line numbers (the added line shifts them), and what does not depend on lbd's workers:
# the heartbeat-security suite (vrrpd alone) and the tests marked `workerless` (tests/lab/pytest.ini:
# vrrpd's outage bars and election, health-check verdicts, the sync session's handling of connections,
# the control socket). --durations: the slowest tests, for keeping make check under its 20 minutes.
LAB_WORKER_SUITES := lab/test_lbd.py lab/test_sync.py lab/test_failover.py lab/test_health.py
lab: all
	cd tests && /usr/bin/python3 -m pytest -v --durations=25 lab
	cd tests && DSRLB_WORKERS=2 /usr/bin/python3 -m pytest -v --durations=10 \
		-m "not workerless" -k "not broken_reload" $(LAB_WORKER_SUITES)

# No circle of calls among the files of each daemon (and of the exporter) (docs/ARCHITECTURE.md); part of make check.
calls:
	/usr/bin/python3 scripts/callcircles.py lbd vrrpd common lbctl exporter

check: deps
	$(MAKE) calls
	$(MAKE) man
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) unit-san
	$(MAKE) fuzz-replay
	$(MAKE) deb-check
	$(MAKE) lab

bench: deps all
	/usr/bin/python3 tests/bench/bench.py
	/usr/bin/python3 tests/bench/bench_sync.py

# 60 s of full load at 20 ms adverts, then at 5 ms (the shortest interval): no transition, no fence.
soak: deps all
	/usr/bin/python3 tests/soak/no_false_failover.py --advert 20ms --json build/soak-20ms.json
	/usr/bin/python3 tests/soak/no_false_failover.py --advert 5ms --json build/soak-5ms.json

demo: deps all
	/usr/bin/python3 tests/demo.py

demo-up: deps all
	/usr/bin/python3 tests/demo.py --up
demo-down:
	/usr/bin/python3 tests/demo.py --down

# Man pages (man/, hand-written mdoc): `make man` checks them with mandoc -T lint, which must say
# nothing. mandoc looks cross-references up only among the pages installed in /usr/share/man, so that
# the pages name each other is the one message tolerated; part of make check.
MANS := $(wildcard man/*.[1-9])
man:
	@out=$$(mandoc -T lint $(MANS) 2>&1 | grep -v -E \
		'STYLE: referenced manual not found: Xr ($(subst $(eval) ,|,$(basename $(notdir $(MANS))))) [1-9]'); \
		if [ -n "$$out" ]; then echo "$$out"; echo "man: mandoc -T lint is not clean"; exit 1; fi; \
		echo "man: mandoc -T lint clean: $(MANS)"

# Binaries under PREFIX; systemd units into PREFIX/lib/systemd/system (/usr/local/lib/systemd/system
# is on systemd's search path, /usr/lib/systemd/system for PREFIX=/usr), with ExecStart pointing at
# PREFIX/sbin; the config stays in /etc/dsrlb whatever PREFIX is (the daemons' default path). An
# existing /etc/dsrlb/dsrlb.conf is never touched: the example goes next to it as dsrlb.conf.example.
# Man pages and the units name the documents of DOCDIR.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR         ?= $(PREFIX)/share/doc/dsrlb
MANDIR         ?= $(PREFIX)/share/man
BASHCOMPDIR    ?= $(PREFIX)/share/bash-completion/completions
install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR)
	install -m 0755 $(B)/lbd $(B)/vrrpd $(B)/dsrlb-exporter $(DESTDIR)$(PREFIX)/sbin/
	install -m 0755 $(B)/lbctl $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 scripts/dsr-backend $(DESTDIR)$(PREFIX)/sbin/
	for u in lbd.service vrrpd.service dsrlb-exporter.service dsrlb.target; do \
		sed -e 's|/usr/local/sbin/|$(PREFIX)/sbin/|g' -e 's|/usr/local/bin/|$(PREFIX)/bin/|g' \
			-e 's|/usr/local/share/doc/dsrlb/|$(DOCDIR)/|g' \
			examples/systemd/$$u > $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
		mv -f $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; \
	done
	for m in $(MANS); do \
		d=$(DESTDIR)$(MANDIR)/man$${m##*.}; \
		sed -e 's|/usr/share/doc/dsrlb/|$(DOCDIR)/|g' $$m > $$d/$${m#man/}.tmp && chmod 0644 $$d/$${m#man/}.tmp && \
		mv -f $$d/$${m#man/}.tmp $$d/$${m#man/} || exit 1; \
	done
	install -m 0644 completion/lbctl.bash $(DESTDIR)$(BASHCOMPDIR)/lbctl
	install -m 0644 README.md $(wildcard docs/*.md) examples/dsrlb.conf $(DESTDIR)$(DOCDIR)/
	[ -d $(DESTDIR)/etc/dsrlb ] || install -d -m 0750 $(DESTDIR)/etc/dsrlb
	install -m 0644 examples/dsrlb.conf $(DESTDIR)/etc/dsrlb/dsrlb.conf.example
	@[ -e $(DESTDIR)/etc/dsrlb/dsrlb.conf ] && echo "install: kept the existing $(DESTDIR)/etc/dsrlb/dsrlb.conf" || \
		echo "install: write $(DESTDIR)/etc/dsrlb/dsrlb.conf (see dsrlb.conf.example), then: systemctl daemon-reload; systemctl enable --now vrrpd lbd"

# The Debian package (debian/), built from a copy of the tree so that this one stays clean: `make deb`
# leaves the .deb files in build/deb; `make deb-check` builds it in a temporary directory and checks it
# (tests/pkg: contents, the same files as make install, lintian, maintainer scripts), in under a
# minute; part of make check. Both install debhelper and lintian first (scripts/deps.sh pkg).
deb:
	@./scripts/deps.sh pkg
	./scripts/deb.sh $(B)/deb
deb-check: all
	@./scripts/deps.sh pkg
	cd tests/pkg && /usr/bin/python3 -m pytest -v .

clean:
	rm -rf $(B)

# --version prints VERSION: rebuild what prints it when it changes.
$(B)/obj/common/startup.o $(B)/obj/lbctl/lbctl.o $(B)/obj/exporter/metrics.o $(B)/obj/exporter/main.o: VERSION

-include $(shell find $(B) -name '*.d' 2>/dev/null)
