/* modules.h: the C modules bosk registers in package.preload. Each
 * luaopen_* lives in the file named after its concern. */
#ifndef BOSK_MODULES_H
#define BOSK_MODULES_H

#include <lua.h>

int luaopen_bosk_core(lua_State *L);     /* core.c: sleep, clocks, uuid */
int luaopen_bosk_http(lua_State *L);     /* lhttp.c: libcurl transport */
int luaopen_bosk_server(lua_State *L);   /* server.c: bosk server */
int luaopen_bosk_loop(lua_State *L);     /* supervisor.c: janitor's libuv loop */
int luaopen_bosk_exec(lua_State *L);     /* exec.c: janitor.exec */
int luaopen_bosk_readline(lua_State *L); /* readline.c: REPL line editing */
int luaopen_bosk_journal(lua_State *L);  /* journal.c: janitor lease journal (SQLite) */
int luaopen_bosk_yaml(lua_State *L);     /* lyaml.c: YAML text -> Lua values (libyaml) */
int luaopen_bosk_wirec(lua_State *L);    /* lwire.c: Go's compact Resource JSON -> Lua */
int luaopen_bosk_gofmt(lua_State *L);    /* lgofmt.c: Go durations and %q quoting */
int luaopen_bosk_unixsock(lua_State *L); /* unixsock.c: a janitor control socket exchange */

void modules_preload(lua_State *L);

#endif
