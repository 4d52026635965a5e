/* worker.c: the zygote process that forks the janitor's workers, and the
 * workers themselves (see worker.h for why and for the message protocol).
 *
 * The zygote is a plain poll() loop over its socket and a signalfd for
 * SIGCHLD; it never calls Lua, so its memory stays still and a fork of it
 * copies little. A worker calls the Lua handler under lua_pcall, sends the
 * report and leaves with _exit (no atexit handlers of the parent). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lauxlib.h>
#include "core/core.h"
#include "janitor/descendants.h"
#include "janitor/exec.h"
#include "janitor/worker.h"

#define REPORT_MAX 65536
#define ZYGOTE_MAX_WORKERS 4096

typedef struct {
    uint32_t id;
    pid_t pid;          /* 0: free slot */
} zworker;

static struct {
    int fd;             /* socket to the supervisor */
    int sigfd;
    lua_State *L;
    int handler_ref;
    zworker workers[ZYGOTE_MAX_WORKERS];
    int count;
    int used;           /* slots [used, MAX) have never held a worker */
} Z;

/* What a worker itself writes: its id and its allocator's counters (see
 * counting_alloc), in one struct so that they share a page: after the
 * fork, each page a worker writes costs it a fault. */
static struct {
    uint32_t worker_id; /* in a worker: its id (0 in the zygote and supervisor) */
    lua_Alloc inner;
    void *inner_ud;
    size_t allocated;
    int restarted;
    size_t arena_used;
    char *arena_last;   /* the latest arena block, which may grow in place */
} WA;

int wmsg_send(int fd, const wmsg_header *h, const void *a, size_t a_len,
              const void *b, size_t b_len)
{
    struct iovec iov[3] = {
        { (void *)h, sizeof *h }, { (void *)a, a_len }, { (void *)b, b_len },
    };
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = 3 };
    if (sizeof *h + a_len + b_len > WMSG_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    for (;;) {
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (n >= 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

ssize_t wmsg_recv(int fd, char *room, size_t room_len, char **buf)
{
    *buf = NULL;
    ssize_t len = recv(fd, room, room_len, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    if (len <= 0)
        return len;
    char *p = (size_t)len <= room_len ? room : malloc((size_t)len);
    if (p == NULL) {
        errno = ENOMEM;
        return -1;
    }
    ssize_t n = recv(fd, p, (size_t)len, MSG_DONTWAIT);
    if (n <= 0) {
        if (p != room)
            free(p);
        return n;
    }
    *buf = p;
    return n;
}

void wmsg_free(char *buf, const char *room)
{
    if (buf != room)
        free(buf);
}

/* ---- the worker ---- */

int worker_progress(const char *text, size_t len)
{
    if (WA.worker_id == 0)
        return -1;
    if (len > WORKER_PROGRESS_MAX)
        len = WORKER_PROGRESS_MAX;
    wmsg_header h = { WMSG_PROGRESS, WA.worker_id, 0, 0 };
    return wmsg_send(Z.fd, &h, text, len, NULL, 0);
}

/* A worker whose parent died (PR_SET_PDEATHSIG) takes its group down.
 * (Only async-signal-safe calls here, so no walk of /proc: what left the
 * group goes to init; see docs/janitor-processes.md.) */
static void worker_orphaned(int signum)
{
    killpg(0, SIGKILL);
    _exit(128 + signum);
}

/* The zygote set every other signal to its default when it started
 * (zygote_main); only those it handles or ignores are reset here. */
static void worker_signals(void)
{
    static const int zygotes_own[] = { SIGCHLD, SIGINT, SIGTERM, SIGHUP };
    for (size_t i = 0; i < sizeof zygotes_own / sizeof zygotes_own[0]; i++)
        signal(zygotes_own[i], SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_IGN);          /* a closed log pipe is no crash */
    signal(SIGUSR2, worker_orphaned);
    prctl(PR_SET_PDEATHSIG, SIGUSR2);
    if (getppid() == 1)
        worker_orphaned(SIGUSR2);
}

/* Called when the cleaning is over, before reporting: the worker moves to
 * the zygote's process group and kills the one it led, so nothing the
 * cleaning started outlives it. The supervisor may then end the cleaning on
 * the report alone, without waiting for this process to exit and be reaped
 * (which, during a burst, queues behind the zygote's forks). Returns 1 when
 * the group is gone, 0 when it could not be done (the supervisor then waits
 * for the exit, after which the zygote kills the group as before). Either
 * way the descendants outside the group are killed first. */
static int leave_group_and_kill_it(void)
{
    prctl(PR_SET_PDEATHSIG, 0);        /* worker_orphaned would now hit the zygote's group */
    signal(SIGUSR2, SIG_DFL);
    /* Processes that left the group (setsid) are still below this worker,
     * a subreaper: they go first, whatever happens to the group. */
    kill_descendants(getpid(), NULL, NULL);
    pid_t zygote_group = getpgid(getppid());
    if (zygote_group < 0 || setpgid(0, zygote_group) != 0)
        return 0;
    return killpg(getpid(), SIGKILL) == 0 || errno == ESRCH;
}

/* The collector would touch, and so copy, most of the heap the worker
 * shares with the zygote, so a worker starts with it stopped and keeps what
 * it allocates. A cleaning that allocates much (a long polling loop, big
 * outputs) must not grow without bound: once it has allocated
 * WORKER_GC_AFTER bytes, a count hook (inherited by the coroutines it
 * creates) restarts the collector. The allocator only counts; the hook
 * restarts, because the allocator may not call Lua.
 *
 * All of this is set up once in the zygote, which never runs Lua, so a
 * worker starts with it in place and writes none of those pages itself.
 *
 * A worker's first WORKER_ARENA bytes of new Lua objects are carved one
 * after the other from a static arena that nobody else touches, instead of
 * from malloc's free chunks spread over the inherited heap: every page
 * written after the fork costs a fault (tens of microseconds on this kind
 * of VM), and a small cleaning's objects then fill two or three fresh
 * pages instead of dirtying a dozen shared ones. Freed arena blocks are
 * not reused (the last one excepted); once the arena is full, malloc
 * serves the rest, so at most WORKER_ARENA bytes are lost. */
#define WORKER_GC_AFTER ((size_t)4 << 20)
#define WORKER_GC_HOOK_EVERY 10000      /* VM instructions between checks */
#define WORKER_ARENA ((size_t)256 << 10)
#define ARENA_ALIGN 16

static _Alignas(ARENA_ALIGN) char worker_arena[WORKER_ARENA];

static int in_arena(const void *ptr)
{
    return (const char *)ptr >= worker_arena && (const char *)ptr < worker_arena + WORKER_ARENA;
}

/* A new arena block of size bytes, or NULL when the arena is full. */
static void *arena_take(size_t size)
{
    size_t rounded = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (rounded < size || rounded > WORKER_ARENA - WA.arena_used)
        return NULL;
    WA.arena_last = worker_arena + WA.arena_used;
    WA.arena_used += rounded;
    return WA.arena_last;
}

/* realloc/free of a block in the arena (see lua_Alloc). */
static void *arena_resize(char *ptr, size_t osize, size_t nsize)
{
    if (ptr == WA.arena_last) {             /* the latest block: resize in place */
        size_t start = (size_t)(ptr - worker_arena);
        size_t rounded = (nsize + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
        if (nsize == 0) {
            WA.arena_used = start;
            WA.arena_last = NULL;
            return NULL;
        }
        if (rounded >= nsize && rounded <= WORKER_ARENA - start) {
            WA.arena_used = start + rounded;
            return ptr;
        }
    }
    if (nsize == 0)
        return NULL;                        /* not reused */
    if (nsize <= osize)
        return ptr;
    void *moved = arena_take(nsize);
    if (moved == NULL)
        moved = WA.inner(WA.inner_ud, NULL, 0, nsize);
    if (moved != NULL)
        memcpy(moved, ptr, osize);
    return moved;
}

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (ptr == NULL)
        WA.allocated += nsize;          /* osize is then a type tag, not a size */
    else if (nsize > osize)
        WA.allocated += nsize - osize;
    if (ptr != NULL && in_arena(ptr))
        return arena_resize(ptr, osize, nsize);
    if (ptr == NULL && nsize > 0) {
        void *block = arena_take(nsize);
        if (block != NULL)
            return block;
    }
    return WA.inner(WA.inner_ud, ptr, osize, nsize);
}

static void collector_back_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (WA.allocated < WORKER_GC_AFTER && !WA.restarted)
        return;
    lua_sethook(L, NULL, 0, 0);
    if (!WA.restarted) {
        WA.restarted = 1;
        lua_gc(L, LUA_GCRESTART);
    }
}

/* In the zygote, before any worker: see above. */
static void worker_collector_off(lua_State *L)
{
    lua_gc(L, LUA_GCSTOP);
    WA.inner = lua_getallocf(L, &WA.inner_ud);
    lua_setallocf(L, counting_alloc, NULL);
    lua_sethook(L, collector_back_hook, LUA_MASKCOUNT, WORKER_GC_HOOK_EVERY);
}

/* In the worker: handler(key, payload) -> report, sent to the supervisor. */
static void worker_main(uint32_t id, const char *key, size_t key_len,
                        const char *payload, size_t payload_len)
{
    setpgid(0, 0);
    /* Orphans of the cleaning (a daemon started with setsid whose parent
     * exited) are reparented here, not to init, so they can be killed. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    worker_signals();
    close(Z.sigfd);
    WA.worker_id = id;
    lua_State *L = Z.L;
    lua_pushcfunction(L, core_traceback);
    lua_rawgeti(L, LUA_REGISTRYINDEX, Z.handler_ref);
    lua_pushlstring(L, key, key_len);
    lua_pushlstring(L, payload, payload_len);
    size_t len = 0;
    const char *report;
    if (lua_pcall(L, 2, 1, -4) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
        report = lua_tolstring(L, -1, &len);
    } else {
        report = lua_pushfstring(L, "F%s", lua_isstring(L, -1) ? lua_tostring(L, -1)
                                              : "the worker returned no report");
        len = strlen(report);
    }
    if (len > REPORT_MAX)
        len = REPORT_MAX;
    wmsg_header h = { WMSG_REPORT, id, leave_group_and_kill_it(), 0 };
    fflush(NULL);
    /* Without its report the supervisor counts the cleaning as crashed. */
    int sent = wmsg_send(Z.fd, &h, report, len, NULL, 0) == 0;
    /* Tearing down this address space takes a few hundred microseconds of
     * CPU that nobody waits for; at the lowest priority it yields to the
     * cleanings that are starting. */
    setpriority(PRIO_PROCESS, 0, 19);
    _exit(sent ? 0 : 3);
}

/* ---- the zygote ---- */

/* Kills a worker (not yet reaped, so pid is still ours) and its group. A
 * worker leads its group from its first instruction (setpgid(0, 0)) until
 * it leaves it after killing it; outside that window there is no group
 * and nothing but the worker itself to kill. */
static void kill_worker(pid_t pid)
{
    if (killpg(pid, SIGKILL) != 0 && errno == ESRCH)
        kill(pid, SIGKILL);
}

static zworker *find_worker(uint32_t id)
{
    for (int i = 0; i < Z.used; i++)
        if (Z.workers[i].pid != 0 && Z.workers[i].id == id)
            return &Z.workers[i];
    return NULL;
}

/* The first free slot: slots stay packed at the front, so the lookups
 * below scan Z.used of them, about as many as run at once. */
static zworker *free_slot(void)
{
    for (int i = 0; i < ZYGOTE_MAX_WORKERS; i++) {
        if (Z.workers[i].pid == 0) {
            if (i >= Z.used)
                Z.used = i + 1;
            return &Z.workers[i];
        }
    }
    return NULL;
}

/* A failed send means the supervisor is gone; the next poll sees the
 * hang-up and shuts the zygote down. */
static void send_status(uint32_t type, uint32_t id, int32_t value)
{
    wmsg_header h = { type, id, value, 0 };
    if (wmsg_send(Z.fd, &h, NULL, 0, NULL, 0) != 0 && errno != EPIPE && errno != ECONNRESET)
        fprintf(stderr, "bosk janitor: worker factory: %s\n", strerror(errno));
}

static void run_worker(const wmsg_header *h, const char *body, size_t body_len)
{
    zworker *slot = free_slot();
    if (h->key_len > body_len || slot == NULL) {
        send_status(WMSG_EXIT, h->id, -1);
        return;
    }
    pid_t pid = fork();
    if (pid == 0)
        worker_main(h->id, body, h->key_len, body + h->key_len, body_len - h->key_len);
    if (pid < 0) {
        send_status(WMSG_EXIT, h->id, -1);
        return;
    }
    /* No setpgid(pid, pid) here: a quick worker may already have left its
     * group for ours (leave_group_and_kill_it), and this would pull it back
     * into the group it is about to kill. kill_worker covers the moment
     * before the child's own setpgid. */
    slot->id = h->id;
    slot->pid = pid;
    Z.count++;
    send_status(WMSG_STARTED, h->id, pid);
}

/* Reads and handles every waiting message; returns 0 at EOF. */
static int handle_messages(void)
{
    for (;;) {
        char room[WMSG_ROOM], *buf;
        ssize_t n = wmsg_recv(Z.fd, room, sizeof room, &buf);
        if (n == 0)
            return 0;
        if (n < 0)
            return errno == EAGAIN || errno == EINTR || errno == ENOMEM;
        if ((size_t)n >= sizeof(wmsg_header)) {
            wmsg_header h;
            memcpy(&h, buf, sizeof h);
            if (h.type == WMSG_RUN) {
                run_worker(&h, buf + sizeof h, (size_t)n - sizeof h);
            } else if (h.type == WMSG_KILL) {
                zworker *w = find_worker(h.id);
                if (w != NULL)
                    kill_worker(w->pid);
            }
        }
        wmsg_free(buf, room);
    }
}

static zworker *find_pid(pid_t pid)
{
    for (int i = 0; i < Z.used; i++)
        if (Z.workers[i].pid == pid)
            return &Z.workers[i];
    return NULL;
}

/* For each exited worker: kill its group (reserved while the zombie
 * exists), reap it, report its wait status. waitid(P_ALL, WNOWAIT) finds
 * the exited ones without asking every live worker in turn. */
static void reap_exited(void)
{
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
            return;
        pid_t pid = info.si_pid;
        kill_worker(pid);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        zworker *w = find_pid(pid);
        if (w == NULL)
            continue;
        send_status(WMSG_EXIT, w->id, status);
        w->pid = 0;
        Z.count--;
    }
}

static int is_worker(pid_t pid, void *ctx)
{
    (void)ctx;
    return find_pid(pid) != NULL;
}

/* The zygote is a subreaper: what a dead worker left running (setsid'd
 * daemons, the children of its killed group) is reparented here before the
 * worker's exit is seen. Every child that is not a worker is such a
 * leftover; it and everything below it is killed. Killed leftovers send
 * SIGCHLD in turn, so whatever they forked meanwhile is found next time. */
static void kill_leftovers(void)
{
    kill_descendants(getpid(), is_worker, NULL);
}

static void reap_workers(void)
{
    struct signalfd_siginfo si;
    while (read(Z.sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        ;
    reap_exited();
    kill_leftovers();
}

static void zygote_shutdown(void)
{
    for (int i = 0; i < ZYGOTE_MAX_WORKERS; i++)
        if (Z.workers[i].pid != 0)
            kill_worker(Z.workers[i].pid);
    for (int i = 0; i < ZYGOTE_MAX_WORKERS; i++)
        if (Z.workers[i].pid != 0)
            while (waitpid(Z.workers[i].pid, NULL, 0) < 0 && errno == EINTR)
                ;
    kill_descendants(getpid(), NULL, NULL);
    _exit(0);
}

static void zygote_main(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD)
            signal(s, SIG_DFL);
    /* Ctrl-C on a terminal, or `kill -TERM -PGID`, reaches the whole group:
     * shutting down is the supervisor's decision, so the zygote ignores
     * them (it leaves when its socket closes or its parent dies). */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &chld, NULL);
    Z.sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    if (Z.sigfd < 0)
        _exit(1);
    for (;;) {
        struct pollfd p[2] = { { Z.fd, POLLIN, 0 }, { Z.sigfd, POLLIN, 0 } };
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            zygote_shutdown();
        if (p[1].revents & POLLIN)
            reap_workers();
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && !handle_messages())
            zygote_shutdown();
    }
}

/* In a new zygote: every descriptor above stderr becomes close-on-exec,
 * so the programs its workers run (janitor.exec, os.execute) inherit none
 * of the supervisor's connections, listener or event loop, whether the
 * library that opened them asked for it or not. Lua keeps using the files
 * a policy opened. */
static void cloexec_all(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != self) {
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0 && !(flags & FD_CLOEXEC))
                fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
    closedir(d);
}

int zygote_start(lua_State *L, int handler_ref, const int *others, int n, pid_t *pid)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    /* Room for the largest message; if the kernel caps the buffers lower,
     * a larger message fails with EMSGSIZE and that cleaning fails. */
    int size = (int)WMSG_MAX + 4096;
    for (int i = 0; i < 2; i++) {
        if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size) != 0 ||
            setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof size) != 0)
            fprintf(stderr, "bosk janitor: worker socket buffers: %s\n", strerror(errno));
    }
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        close(sv[0]);
        for (int i = 0; i < n; i++)
            close(others[i]);
        cloexec_all();
        Z.fd = sv[1];
        Z.L = L;
        Z.handler_ref = handler_ref;
        worker_collector_off(L);
        exec_enter_worker();        /* for the workers: set once, here */
        zygote_main();
    }
    int e = errno;
    close(sv[1]);
    if (child < 0) {
        close(sv[0]);
        errno = e;
        return -1;
    }
    *pid = child;
    return sv[0];
}
