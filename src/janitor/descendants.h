/* descendants.h: finding and killing every process below a janitor worker
 * or the worker factory, including those that left the process group with
 * setsid (see docs/janitor-processes.md).
 *
 * Workers and the worker factory are child subreapers (PR_SET_CHILD_SUBREAPER):
 * a process whose parent dies is reparented to the nearest of them instead
 * of to init, so everything a cleaning started stays below its worker (and,
 * once the worker is gone, below the factory), where this walk finds it. */
#ifndef BOSK_DESCENDANTS_H
#define BOSK_DESCENDANTS_H

#include <sys/types.h>

/* Stops and then kills (SIGKILL) every descendant of root, root excluded,
 * except the subtrees of root's children for which spare(pid, ctx) returns
 * nonzero (spare may be NULL). Each process is stopped before its children
 * are listed, so it cannot fork behind the walk. Returns the number of
 * processes signalled. At most DESCENDANTS_MAX are visited per call;
 * callers call again on the next SIGCHLD, when the rest have been
 * reparented to them. root == getpid() is taken for a single-threaded
 * caller (a worker, the worker factory): its children are read from one
 * file, the common case being that there are none. */
#define DESCENDANTS_MAX 4096
int kill_descendants(pid_t root, int (*spare)(pid_t pid, void *ctx), void *ctx);

#endif
