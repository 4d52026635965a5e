/* exec.h: running programs without a shell (module "bosk.exec").
 *
 * Inside a janitor worker the programs janitor.exec starts stay in the
 * worker's process group, so the supervisor's group kill (timeout, end of
 * the cleaning) reaches them and everything they started. Elsewhere each
 * program gets its own group, killed as a whole on timeout. */
#ifndef BOSK_EXEC_H
#define BOSK_EXEC_H

/* Called in a freshly forked worker: later execs join the worker's group. */
void exec_enter_worker(void);

#endif
