# fuzz.mk: libFuzzer harnesses (tests/fuzz/*_fuzz.c), included by the
# Makefile. See docs/fuzzing.md.
#
#   make fuzz-build             build/fuzz/<name> for every harness
#   make fuzz [FUZZ_SECONDS=N]  run each for N seconds (default 60)
#   make fuzz FUZZ=config       only the named harnesses
#
# The harnesses need clang and its libFuzzer runtime (Debian: clang and
# libclang-rt-dev, in scripts/install-deps.sh). Without them both targets
# say so in one line and succeed, and tests/fuzz_test.lua skips.
# Everything is built with ASan + UBSan: a memory error, an undefined
# behaviour or a broken invariant (FUZZ_CHECK) is a crash, its input saved
# under build/fuzz/crashes/.

FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_SECONDS ?= 60
# Every tests/fuzz/<name>_fuzz.c; url_fuzz.c only where the server reads
# request targets itself (src/server/http_url.c).
FUZZ_ALL     := $(patsubst tests/fuzz/%_fuzz.c,%,$(wildcard tests/fuzz/*_fuzz.c))
FUZZ         ?= $(if $(wildcard src/server/http_url.c),$(FUZZ_ALL),$(filter-out url,$(FUZZ_ALL)))
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# Deferred (=): pkg-config runs only when a harness is built.
FUZZ_CFLAGS   = -std=gnu11 $(WARN) -g -O1 $(FUZZ_SAN) -D_GNU_SOURCE \
                $(shell pkg-config --cflags $(PKGS) libmicrohttpd) -Isrc -I$(BUILD) -Itests/fuzz
FUZZ_LIBS     = $(shell pkg-config --libs $(PKGS) libmicrohttpd) -ldl -lpthread -lm
# The project's code but the janitor (no harness needs it), instrumented
# for coverage, as an archive: a harness that includes a .c file to reach
# its static functions (path_fuzz.c) then defines that file's symbols
# itself, and the archive's copy stays out.
FUZZ_OBJS    := $(patsubst src/%.c,$(FUZZ_BUILD)/obj/%.o,$(filter-out src/main.c src/janitor/%,$(SRCS)))
FUZZ_BINS    := $(addprefix $(FUZZ_BUILD)/,$(FUZZ))
# Probes that clang links a libFuzzer program (a fraction of a second).
FUZZ_PROBE   := printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' | \
                $(FUZZ_CC) -fsanitize=fuzzer -x c -o /dev/null - >/dev/null 2>&1
FUZZ_SKIP    := echo "fuzz: skipped, $(FUZZ_CC) with libFuzzer not found (Debian: clang libclang-rt-dev)"

.PHONY: fuzz fuzz-build
# `make test` builds the harnesses too: tests/fuzz_test.lua runs them.
test: fuzz-build
fuzz-build: deps
	@if $(FUZZ_PROBE); then $(MAKE) --no-print-directory -s $(FUZZ_BINS); else $(FUZZ_SKIP); fi

# One line per harness: execs, exec/s, and where a crash input went.
fuzz: fuzz-build
	@if $(FUZZ_PROBE); then \
	  for h in $(FUZZ); do tests/fuzz/run.sh $(FUZZ_BUILD) $$h $(FUZZ_SECONDS) || exit 1; done; fi

$(FUZZ_BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	@echo FUZZ-CC $<
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

# core.c includes the version header generated in $(BUILD) (mk/install.mk).
$(FUZZ_BUILD)/obj/core/core.o: $(BUILD)/bosk_version.h

$(FUZZ_BUILD)/libbosk.a: $(FUZZ_OBJS)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_BINS): $(FUZZ_BUILD)/%: tests/fuzz/%_fuzz.c tests/fuzz/fuzz.h $(FUZZ_BUILD)/libbosk.a
	@echo FUZZ-LINK $@
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -MF $@.d -o $@ $< \
	  $(FUZZ_BUILD)/libbosk.a $(FUZZ_LIBS)

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_BINS:=.d)
