# kgate — Kafka disaster-recovery gateway.
#
#   make            build build/kgate
#   make demo       install deps, build, run the embedded failover demo
#   make test       install deps, build, run unit tests (plain and under ASan+UBSan), the
#                   integration tests, and every fuzz target briefly (what CI runs)
#   make check      unit + integration tests under ASan+UBSan, then every fuzz target for longer
#   make test-direct  integration tests with clients straight at the dev clusters (no kgate):
#                   validates the tests themselves; never a substitute for make test
#   make bench      benchmarks (results in bench/results/)
#   make fuzz       libFuzzer targets (FUZZ_SECONDS each)
#   make format     clang-format the sources
#   make man        the man page build/kgate.1, generated from `kgate --help`
#   make deb        the Debian package build/kgate_VERSION_ARCH.deb (scripts/build-deb)
#
# Generated protocol code goes to $(BUILD)/gen from protocol/messages/*.json.

BUILD    ?= build
CC       ?= cc
PY       := /usr/bin/python3
PKGS     := libfyaml jansson libmicrohttpd gnutls sqlite3 libpq libssl libcrypto libcurl rdkafka zlib liblz4 libzstd
OPT      ?= -O2 -g
SAN      ?=
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wno-unused-parameter -Wno-missing-field-initializers \
            -Wno-format-truncation
# Recursive (=) on purpose: pkg-config runs when a recipe needs it, after `deps`.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lsnappy
CPPFLAGS  = -std=c11 -D_GNU_SOURCE -Isrc -I$(BUILD)/gen $(PKG_CFLAGS)
CFLAGS    = $(OPT) $(SAN) $(WARN) -fno-strict-aliasing -pthread
LDFLAGS   = $(SAN) -pthread
LDLIBS    = $(PKG_LIBS) -lm

MSG_JSON := $(wildcard protocol/messages/*.json)
GEN_C    := $(patsubst protocol/messages/%.json,$(BUILD)/gen/msg_%.c,$(MSG_JSON)) $(BUILD)/gen/kp_api_table.c
GEN_H    := $(BUILD)/gen/kp_msgs.h
GEN_STAMP := $(BUILD)/gen/.stamp
# The web console's files (src/admin/ui), compiled in: kgate reads no file to serve them.
UI_FILES := $(wildcard src/admin/ui/*)
UI_GEN_C := $(BUILD)/gen/kg_ui_assets.c

LIB_SRC  := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(GEN_C:%.c=%.o) $(UI_GEN_C:%.c=%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps build demo test test-direct check unit unit-asan integration bench fuzz format \
	clean gen man deb
all: build

deps:
	@scripts/install-deps

build: $(BUILD)/kgate

gen: $(GEN_STAMP)

$(GEN_STAMP): tools/kgen/kgen.py $(MSG_JSON)
	@mkdir -p $(BUILD)/gen
	$(PY) tools/kgen/kgen.py --out $(BUILD)/gen protocol/messages
	@touch $@

$(GEN_C) $(GEN_H): $(GEN_STAMP)

$(UI_GEN_C): scripts/gen-ui-assets $(UI_FILES)
	@mkdir -p $(BUILD)/gen
	scripts/gen-ui-assets $@ src/admin/ui

$(BUILD)/%.o: %.c $(GEN_STAMP)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# Generated code is correct but verbose; do not let style warnings fail it.
$(BUILD)/gen/%.o: $(BUILD)/gen/%.c $(GEN_STAMP)
	@echo "CC $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-unused-function -c $< -o $@

$(BUILD)/libkgate.a: $(LIB_OBJ)
	@rm -f $@
	@echo "AR $@"
	@ar rcs $@ $^

$(BUILD)/kgate: $(BUILD)/src/main.o $(BUILD)/libkgate.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The man page, from the text `kgate --help` prints (man -l build/kgate.1 to read it).
man: $(BUILD)/kgate.1

$(BUILD)/kgate.1: $(BUILD)/kgate scripts/gen-man
	scripts/gen-man $(BUILD)/kgate > $@.tmp && mv $@.tmp $@

# The Debian package: binary, man page, systemd unit, example config, bash completion, the
# kgate system user (dpkg-deb only; docs/operations.md).
deb: $(BUILD)/kgate $(BUILD)/kgate.1
	scripts/build-deb $(BUILD)/kgate $(BUILD)/kgate.1 $(BUILD)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libkgate.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests/unit $< -o $@ $(BUILD)/libkgate.a $(LDFLAGS) $(LDLIBS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# test_store too: tests/integration/fleet runs it against PostgreSQL (the build under test's).
integration: build $(BUILD)/tests/test_store
	scripts/test-setup
	KGATE_BIN=$(abspath $(BUILD)/kgate) scripts/run-integration

JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# The sanitized build: ASan+UBSan, any UB report aborts; LeakSanitizer checks every kgate exit.
ASAN_MAKE = $(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"

unit-asan:
	$(ASAN_MAKE) -j$(JOBS) unit

test: deps
	$(MAKE) -j$(JOBS) build
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) integration
	$(MAKE) fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

test-direct: deps
	$(MAKE) -j$(JOBS) build
	scripts/test-setup
	KGATE_BIN=$(abspath $(BUILD)/kgate) scripts/run-integration --direct

check: deps
	$(ASAN_MAKE) -j$(JOBS) build unit
	$(ASAN_MAKE) integration
	$(MAKE) fuzz FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS)

demo: deps
	$(MAKE) -j$(JOBS) build
	$(BUILD)/kgate demo

bench: deps
	$(MAKE) -j$(JOBS) build
	scripts/test-setup
	KGATE_BIN=$(abspath $(BUILD)/kgate) bench/run

FUZZ_SECONDS ?= 30
TEST_FUZZ_SECONDS ?= 5
CHECK_FUZZ_SECONDS ?= 60
# A single input running longer than FUZZ_TIMEOUT seconds fails the run (hang or slow unit);
# FUZZ_TARGETS narrows the run to some targets (default: all); FUZZ_SECONDS=0 only replays the
# committed corpus. See scripts/run-fuzz for running targets by hand.
FUZZ_TIMEOUT ?= 10
FUZZ_RSS_MB ?= 2048
FUZZ_TARGETS ?=
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/fuzz/%)
# Undefined behaviour must abort, or libFuzzer would never see it as a finding.
FUZZ_MAKE_FLAGS := BUILD=build-fuzz CC=clang \
	OPT="-O1 -g -fno-omit-frame-pointer -Wno-unknown-warning-option" \
	SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"

# Built by the fuzz sub-make, so CC and CFLAGS are the fuzz build's.
build-fuzz/fuzz/%: tests/fuzz/%.c build-fuzz/libkgate.a
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -fsanitize=fuzzer $< build-fuzz/libkgate.a -o $@ $(LDFLAGS) $(LDLIBS)

# Objects do not depend on the flags they were built with: when the fuzz flags change, the fuzz
# build starts over (the kept corpus, artifacts and logs stay).
fuzz: deps
	@mkdir -p build-fuzz
	@if [ "$$(cat build-fuzz/.flags 2>/dev/null)" != '$(FUZZ_MAKE_FLAGS)' ]; then \
		rm -rf build-fuzz/src build-fuzz/gen build-fuzz/libkgate.a build-fuzz/fuzz; \
		echo '$(FUZZ_MAKE_FLAGS)' > build-fuzz/.flags; \
	fi
	$(MAKE) -j$(JOBS) $(FUZZ_MAKE_FLAGS) $(FUZZ_BIN)
	scripts/run-fuzz --seconds $(FUZZ_SECONDS) --timeout $(FUZZ_TIMEOUT) --rss-mb $(FUZZ_RSS_MB) \
		$(FUZZ_TARGETS)

format:
	clang-format -i $$(find src tests/unit tests/fuzz -name '*.[ch]')

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
