# mk/install.mk (included at the end of the Makefile): the version stamp,
# the `boskos` module for plain Lua 5.4, and `make install` / `uninstall`.
#
#   make install [PREFIX=/usr/local] [DESTDIR=/tmp/stage] [BINDIR=...]
#   make uninstall                   (same variables: removes what install put)
#   make lualib                      only the Lua module (build/lualib/)
#
# Directory variables follow the GNU conventions (upper case, as the issue
# names them); each can be overridden alone. Nothing here runs apt-get, and
# nothing needs root: a writable PREFIX is enough.

# ---- version -----------------------------------------------------------
# One source, VERSION (or `git describe` of a tagged checkout, see
# mk/version.sh), written into $(BUILD)/bosk_version.h. The header is
# rewritten only when the text changes, so a rebuild compiles core.c again
# only after a new version (and `make install` by another user than the
# builder writes nothing in build/); core.c publishes it as
# require("bosk.core").version.
$(BUILD)/bosk_version.h: FORCE
	@v=$$(sh mk/version.sh) && line="#define BOSK_VERSION \"$$v\"" && \
	  if [ "$$(cat $@ 2>/dev/null)" != "$$line" ]; then \
	    mkdir -p $(@D) && printf '%s\n' "$$line" > $@ && echo "VERSION $$v"; fi
$(BUILD)/obj/core/core.o: $(BUILD)/bosk_version.h
.PHONY: FORCE
FORCE:

# ---- the boskos module for plain lua5.4 --------------------------------
# The client's C modules (bosk.core, bosk.http, bosk.wirec, bosk.yaml,
# bosk.gofmt) in
# one shared object, bosk.so. Lua's all-in-one loader finds `bosk.core`
# in it (it looks for luaopen_bosk_core in bosk.so), so the Lua files need
# no change and nothing registers anything. libcurl stays dlopen'ed on the
# first request (dl_curl.c); lua-cjson comes from the system's cjson
# module (Debian's lua-cjson). Built without sanitizers: a plain lua5.4
# cannot host ASan.
LUALIB_DIR  := $(BUILD)/lualib
LUALIB      := $(LUALIB_DIR)/bosk.so
LUALIB_SRCS := src/core/core.c src/core/lgofmt.c src/core/godur.c src/core/gojson.c \
               src/core/goprint.c src/client/lhttp.c src/client/request_opts.c \
               src/client/transport.c src/client/dl_curl.c src/client/lwire.c src/client/lyaml.c \
               src/client/unixsock.c
LUALIB_OBJS := $(patsubst src/%.c,$(LUALIB_DIR)/%.o,$(LUALIB_SRCS))
# The Lua side: every file under lua/, as luarocks' builtin build copies
# them (the CLI's modules are harmless there: they fail with "module
# 'bosk.loop' not found" if required without the bosk executable).
LUALIB_LUA  := $(LUA_SRC)

.PHONY: lualib install uninstall
lualib: $(LUALIB)

$(LUALIB): $(LUALIB_OBJS)
	@echo LINK $@
	@$(CC) -shared -o $@ $^ $(shell pkg-config --libs yaml-0.1 libcjson) -ldl -lpthread -lm

$(LUALIB_DIR)/%.o: src/%.c
	@mkdir -p $(@D)
	@echo CC $< '(lualib)'
	@$(CC) $(filter-out $(SANFLAGS),$(ALL_CFLAGS)) -fPIC -c -o $@ $<
$(LUALIB_DIR)/core/core.o: $(BUILD)/bosk_version.h

-include $(LUALIB_OBJS:.o=.d)

# ---- where things go ---------------------------------------------------
PREFIX         ?= /usr/local
EXEC_PREFIX    ?= $(PREFIX)
BINDIR         ?= $(EXEC_PREFIX)/bin
LIBDIR         ?= $(EXEC_PREFIX)/lib
DATAROOTDIR    ?= $(PREFIX)/share
DATADIR        ?= $(DATAROOTDIR)
MANDIR         ?= $(DATAROOTDIR)/man
DOCDIR         ?= $(DATAROOTDIR)/doc/bosk
PKGDATADIR     ?= $(DATADIR)/bosk
SYSTEMDUNITDIR ?= $(LIBDIR)/systemd/system
BASHCOMPDIR    ?= $(DATAROOTDIR)/bash-completion/completions
# Where the system's lua5.4 looks first under a prefix (Debian's
# package.path / package.cpath list $(PREFIX)/share/lua/5.4 and
# $(PREFIX)/lib/lua/5.4 for /usr/local; /usr/lib/lua/5.4 is also searched).
LUA_LMOD_DIR   ?= $(DATAROOTDIR)/lua/5.4
LUA_CMOD_DIR   ?= $(LIBDIR)/lua/5.4
INSTALL        ?= install
INSTALL_PROGRAM ?= $(INSTALL) -m 755
INSTALL_DATA   ?= $(INSTALL) -m 644

MAN_PAGES    := man/bosk.1 man/bosk-policy.5
DOC_FILES    := README.md CHANGELOG.md LICENSE
UNIT_FILES   := $(wildcard config/systemd/*.service config/systemd/*.timer)
# Examples: policies, their scripts, resource config, deployment manifests.
SHARE_FILES  := config/boskos-resources.yaml $(wildcard config/policies/*.lua \
                config/scripts/* config/examples/* config/kubernetes/*.yaml)

# Every file `install` writes, under $(DESTDIR): what `uninstall` removes.
INSTALLED := $(BINDIR)/bosk \
  $(MANDIR)/man1/bosk.1 $(MANDIR)/man5/bosk-policy.5 \
  $(addprefix $(DOCDIR)/,$(DOC_FILES)) \
  $(patsubst config/%,$(PKGDATADIR)/%,$(SHARE_FILES)) \
  $(patsubst config/systemd/%,$(SYSTEMDUNITDIR)/%,$(UNIT_FILES)) \
  $(BASHCOMPDIR)/bosk \
  $(patsubst lua/%,$(LUA_LMOD_DIR)/%,$(LUALIB_LUA)) $(LUA_CMOD_DIR)/bosk.so
# Directories that belong to bosk alone: removed when empty.
OWN_DIRS := $(PKGDATADIR)/policies $(PKGDATADIR)/scripts $(PKGDATADIR)/examples \
  $(PKGDATADIR)/kubernetes $(PKGDATADIR) $(DOCDIR)

install: $(BUILD)/bosk $(LUALIB)
	@echo "INSTALL $(DESTDIR)$(PREFIX)"
	@$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(BASHCOMPDIR) \
	  $(DESTDIR)$(LUA_LMOD_DIR)/bosk $(DESTDIR)$(LUA_CMOD_DIR)
	@$(INSTALL_PROGRAM) $(BUILD)/bosk $(DESTDIR)$(BINDIR)/bosk
	@$(INSTALL_DATA) man/bosk.1 $(DESTDIR)$(MANDIR)/man1/bosk.1
	@$(INSTALL_DATA) man/bosk-policy.5 $(DESTDIR)$(MANDIR)/man5/bosk-policy.5
	@$(INSTALL_DATA) $(DOC_FILES) $(DESTDIR)$(DOCDIR)/
	@$(INSTALL_DATA) completion/bosk.bash $(DESTDIR)$(BASHCOMPDIR)/bosk
	@for f in $(LUALIB_LUA); do to=$(DESTDIR)$(LUA_LMOD_DIR)/$${f#lua/}; \
	  $(INSTALL) -d $${to%/*} && $(INSTALL_DATA) $$f $$to || exit 1; done
	@$(INSTALL_PROGRAM) $(LUALIB) $(DESTDIR)$(LUA_CMOD_DIR)/bosk.so
	@for f in $(SHARE_FILES); do \
	  to=$(DESTDIR)$(PKGDATADIR)/$${f#config/}; mode=644; [ -x $$f ] && mode=755; \
	  $(INSTALL) -d $${to%/*} && $(INSTALL) -m $$mode $$f $$to || exit 1; done
	@# The units name /usr/local/bin/bosk (the default PREFIX): point them at BINDIR.
	@for f in $(UNIT_FILES); do \
	  sed 's|/usr/local/bin/bosk|$(BINDIR)/bosk|g' $$f > $(DESTDIR)$(SYSTEMDUNITDIR)/$${f##*/} && \
	  chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${f##*/} || exit 1; done

uninstall:
	@echo "UNINSTALL $(DESTDIR)$(PREFIX)"
	@rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@[ ! -d $(DESTDIR)$(LUA_LMOD_DIR)/bosk ] || \
	  find $(DESTDIR)$(LUA_LMOD_DIR)/bosk -depth -type d -empty -delete
	@for d in $(addprefix $(DESTDIR),$(OWN_DIRS)); do \
	  [ ! -d $$d ] || rmdir --ignore-fail-on-non-empty $$d; done
