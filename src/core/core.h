/* core.h: what core.c shares with other C files. */
#ifndef BOSK_CORE_H
#define BOSK_CORE_H

#include <signal.h>
#include <lua.h>

/* Set by the REPL's SIGINT handler; core.sleep returns early while set,
 * so Ctrl-C interrupts a sleeping call. */
extern volatile sig_atomic_t core_interrupt_pending;

/* A random (version 4) UUID, lowercase, into out: the one maker for
 * core.uuid4 and the server's dynamic resource names. 0, or -1 with errno
 * set when getrandom fails. */
int core_uuid4_string(char out[37]);

/* lua_pcall message handler: message (or __tostring) + traceback. */
int core_traceback(lua_State *L);

#endif
