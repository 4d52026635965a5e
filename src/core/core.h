/* core.h: what core.c shares with other C files. */
#ifndef BOSK_CORE_H
#define BOSK_CORE_H

#include <signal.h>
#include <lua.h>

/* Set by the REPL's SIGINT handler; core.sleep returns early while set,
 * so Ctrl-C interrupts a sleeping call. */
extern volatile sig_atomic_t core_interrupt_pending;

/* lua_pcall message handler: message (or __tostring) + traceback. */
int core_traceback(lua_State *L);

#endif
