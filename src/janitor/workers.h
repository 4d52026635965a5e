/* workers.h: the supervisor's side of the worker factories (workers.c),
 * added to module bosk.loop: loop.zygote, loop.zygote_retire, loop.spawn,
 * loop.kill, loop.worker_pid, loop.workers, loop.on_progress, loop.progress. */
#ifndef BOSK_WORKERS_H
#define BOSK_WORKERS_H

#include <lua.h>

void janitor_workers_register(lua_State *L);
/* Closes every factory (which kills its workers) and forgets the workers
 * without calling their callbacks; for loop.close. */
void janitor_workers_close(lua_State *L);

#endif
