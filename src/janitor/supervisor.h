/* supervisor.h: what the other parts of bosk.loop (janitor_http.c) need
 * from the loop in supervisor.c. */
#ifndef BOSK_SUPERVISOR_H
#define BOSK_SUPERVISOR_H

#include <uv.h>
#include <lua.h>

/* The loop every janitor handle runs on (created on first use). */
uv_loop_t *supervisor_loop(void);
/* The Lua thread running loop.run: callbacks push onto it. */
lua_State *supervisor_state(void);
/* Calls the function below the nargs values on top of supervisor_state()
 * with a traceback handler; an error is printed, never raised. */
void supervisor_call(int nargs);

#endif
