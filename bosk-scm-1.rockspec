-- The `boskos` client module for Lua 5.4, built by luarocks:
--   luarocks --lua-version=5.4 make            (from a clone of this tree)
-- It installs the same files as `make install` does for the module:
-- everything under lua/ as Lua files (builtin copies the lua/ directory
-- whole; the modules below are named so luarocks knows them), and
-- bosk.so, the client's C
-- modules (bosk.core, bosk.http, bosk.wirec, bosk.yaml, bosk.gofmt, bosk.unixsock), which Lua's
-- all-in-one loader finds by their luaopen_bosk_* names. libcurl is
-- dlopen'ed on the first request, as in the bosk executable.
rockspec_format = "3.0"
package = "bosk"
version = "scm-1"
source = {
  -- `luarocks make` builds the working tree and never fetches this.
  url = "git+file:///dev/null",
}
description = {
  summary = "Boskos (Kubernetes test-infra resource leasing) client for Lua 5.4",
  detailed = [[
The boskos module: every call of the upstream Go client
(sigs.k8s.io/boskos/client), wire-compatible with it, for plain Lua 5.4.
The bosk executable (server, janitor, REPL) is built with make.]],
  license = "Apache-2.0",
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson >= 2.1",
}
external_dependencies = {
  YAML = { header = "yaml.h", library = "yaml" },
  LIBCJSON = { header = "cjson/cJSON.h", library = "cjson" },
}
build = {
  type = "builtin",
  modules = {
    boskos = "lua/boskos.lua",
    ["bosk.client"] = "lua/bosk/client.lua",
    ["bosk.client_core"] = "lua/bosk/client_core.lua",
    ["bosk.wire"] = "lua/bosk/wire.lua",
    ["bosk.duration"] = "lua/bosk/duration.lua",
    bosk = {
      sources = {
        "src/core/core.c", "src/core/lgofmt.c", "src/core/godur.c", "src/core/gojson.c",
        "src/core/goprint.c", "src/client/lhttp.c", "src/client/request_opts.c",
        "src/client/transport.c", "src/client/dl_curl.c", "src/client/lwire.c",
        "src/client/lyaml.c", "src/client/unixsock.c",
      },
      -- Keep in step with VERSION (the install test compares them).
      defines = { "_GNU_SOURCE", 'BOSK_VERSION="0.1.0"' },
      incdirs = { "src", "$(YAML_INCDIR)", "$(LIBCJSON_INCDIR)" },
      libdirs = { "$(YAML_LIBDIR)", "$(LIBCJSON_LIBDIR)" },
      libraries = { "yaml", "cjson", "dl", "pthread", "m" },
    },
  },
}
