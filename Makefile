# bosk: a Boskos client, server and janitor in C and Lua 5.4.
#
#   make              build build/bosk
#   make test         run every test (ends with "N passed, N failed")
#   make test SANITIZE=1   the same under ASan + UBSan (separate build dir)
#   make bench        benchmarks (not timed tests); figures go in README.md
#   make demo         the main job on the embedded default config
#   make fuzz         libFuzzer harnesses, FUZZ_SECONDS=N each (tests/fuzz/fuzz.mk)
#
# Every C file under src/ is compiled (src/core shared, src/client,
# src/server, src/janitor one part each); every .lua under lua/ is embedded.


ifeq ($(SANITIZE),1)
BUILD   ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   ?= build
SANFLAGS :=
endif

CC      ?= gcc
WARN    := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wpointer-arith -Wno-unused-parameter
CFLAGS  ?= -O2 -g
PKGS    := lua5.4 lua5.4-cjson yaml-0.1 sqlite3 libuv libcjson
# Headers only: these libraries are dlopen'ed (src/*/dl_*.c), never linked.
DL_PKGS := readline libcurl libmicrohttpd
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -D_GNU_SOURCE -MMD -MP \
              $(shell pkg-config --cflags $(PKGS) $(DL_PKGS)) -Isrc -I$(BUILD)
# Start-up is a feature: Lua, lua-cjson, libyaml, SQLite and libuv are linked
# from the static archives their Debian -dev packages ship, into a non-PIE
# executable, so the loader has five libraries fewer to map and almost
# nothing to relocate (`bosk run -e ''` 2.2 ms -> 1.7 ms; lua5.4 1.3 ms).
# Each of the two halves alone gains nothing. cJSON (Debian ships no
# archive) stays shared. libcurl, libmicrohttpd and readline are dlopen'ed
# on first use (src/*/dl_*.c), so `bosk run` starts without loading
# TLS/HTTP2/LDAP libraries, and without readline and libtinfo, which only
# the REPL's line editing needs (fewer mappings: each janitor worker's fork
# is cheaper). -rdynamic exports the Lua API to C modules a script may
# require.
# The sanitizer build keeps them shared: linked statically, LeakSanitizer
# no longer sees OpenSSL's init allocation (made when libcurl loads) as
# reachable and reports it at exit.
ifeq ($(SANITIZE),1)
LDLIBS  := $(shell pkg-config --libs $(PKGS)) -ldl -lpthread -lm
else
STATIC_LIBS := -llua5.4-cjson -llua5.4 -lyaml -lsqlite3 -luv_a
LDLIBS  := -Wl,-Bstatic $(STATIC_LIBS) -Wl,-Bdynamic \
           $(shell pkg-config --libs libcjson) -ldl -lpthread -lm
endif
LDFLAGS += $(SANFLAGS) -rdynamic -no-pie -Wl,-z,now

SRCS    := $(wildcard src/*.c src/*/*.c)
OBJS    := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS)) $(BUILD)/obj/lua_sources.o
LUA_SRC := $(shell find lua -name '*.lua' | sort)
UNIT_SRCS := $(wildcard tests/unit/*.c)
LIB_OBJS  := $(filter-out $(BUILD)/obj/main.o,$(OBJS))

.PHONY: all deps bench-deps test bench demo clean
all: $(BUILD)/bosk

$(BUILD)/bosk: $(OBJS)
	@echo LINK $@
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	@mkdir -p $(@D)
	@echo CC $<
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/lua_sources.c: scripts/embed.lua $(LUA_SRC) | $(BUILD)/obj
	@echo EMBED lua/
	@lua5.4 scripts/embed.lua $@ $(LUA_SRC)

$(BUILD)/obj/lua_sources.o: $(BUILD)/lua_sources.c
	@echo CC $<
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
$(BUILD)/unit/%: tests/unit/%.c $(LIB_OBJS) | $(BUILD)/obj
	@mkdir -p $(BUILD)/unit
	@echo LINK $@
	@$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj:
	@mkdir -p $@

# Only these targets may install packages (through apt-get, and only what
# is missing): plain `make`, `clean` and `install` never touch apt.
deps:
	@scripts/install-deps.sh

bench-deps: deps
	@scripts/install-deps.sh --bench

test: deps
	@$(MAKE) --no-print-directory $(BUILD)/bosk $(UNIT_BINS)
	@BOSK=$(BUILD)/bosk UNIT="$(UNIT_BINS)" SANITIZE=$(SANITIZE) tests/run.sh

bench: bench-deps
	@$(MAKE) --no-print-directory $(BUILD)/bosk
	@BOSK=$(BUILD)/bosk scripts/bench.sh

demo: deps
	@$(MAKE) --no-print-directory $(BUILD)/bosk
	@BOSK=$(BUILD)/bosk scripts/demo.sh

clean:
	rm -rf build

# (optional: a build context without tests/, as the Dockerfile's, has none)
-include tests/fuzz/fuzz.mk

-include $(OBJS:.o=.d)
include mk/install.mk
