/* loop.h: the context every part of module bosk.loop shares: the libuv
 * loop and the Lua thread its callbacks run on. supervisor.c (timers,
 * signals, workers), janitor_http.c (loop.http) and janitor_metrics.c
 * depend on this file, not on each other. */
#ifndef BOSK_LOOP_H
#define BOSK_LOOP_H

#include <uv.h>
#include <lua.h>

/* The loop every janitor handle runs on (created on first use). */
uv_loop_t *loop_uv(void);
/* Whether loop_uv() has made the loop (and it was not closed since). */
int loop_uv_exists(void);
/* Forgets the loop after uv_loop_close; the next loop_uv() makes one. */
void loop_uv_closed(void);
/* The Lua thread running loop.run: callbacks push onto it. */
lua_State *loop_lua(void);
/* Makes L the thread callbacks use; returns the previous one. */
lua_State *loop_set_lua(lua_State *L);
/* Calls the function below the nargs values on top of loop_lua() with a
 * traceback handler; an error is printed, never raised (callers are libuv
 * callbacks). */
void loop_call(int nargs);

#endif
