/* worker.h: the janitor's worker factory (the "zygote").
 *
 * Forking a cleaning worker straight from the supervisor is slow: the
 * supervisor is multi-threaded (libuv's HTTP thread pool) and busy, so every
 * page either side touches afterwards is copied, each copy flushing the TLB
 * of every core. Instead the supervisor forks one small, idle,
 * single-threaded process right after the policies are loaded; that process
 * forks every worker on request. Supervisor and zygote talk over a
 * SOCK_SEQPACKET socket pair (one message = one record, never interleaved):
 *
 *   supervisor -> zygote   RUN(id, key, payload)   KILL(id)
 *   zygote -> supervisor   STARTED(id, pid)   EXIT(id, wait status)
 *   worker -> supervisor   REPORT(id, text)   (sent before the worker exits,
 *                                              so it always precedes EXIT)
 *   worker -> supervisor   PROGRESS(id, text) (janitor.progress, any number
 *                                              of times before REPORT)
 *
 * Before reporting, a worker leaves its process group and kills it; if that
 * worked, the report says so and ends the cleaning at once (the EXIT that
 * follows is then ignored). Otherwise the cleaning ends at EXIT.
 *
 * A worker runs handler(key, payload) from the Lua state it inherited and
 * sends the string it returns as its report. It runs in its own process
 * group; after it exits the zygote kills that group, then reaps it. */
#ifndef BOSK_WORKER_H
#define BOSK_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <lua.h>

enum { WMSG_RUN = 1, WMSG_KILL, WMSG_STARTED, WMSG_REPORT, WMSG_EXIT, WMSG_PROGRESS };

typedef struct {
    uint32_t type;
    uint32_t id;
    int32_t value;      /* STARTED: pid; EXIT: wait status (-1: fork failed);
                           REPORT: 1 when the worker's process group is
                           already gone, so the report ends the cleaning */
    uint32_t key_len;   /* RUN: the key's length; the payload follows it */
} wmsg_header;

#define WMSG_MAX ((size_t)4 << 20)

/* Forks the zygote. handler_ref: registry reference of the Lua function
 * workers run. The child closes the n descriptors in others (the
 * supervisor's ends of the other zygotes' sockets: a copy held here would
 * keep an old zygote from seeing its socket close). Returns the
 * supervisor's end of the socket and the zygote's pid, or -1 with errno
 * set. */
int zygote_start(lua_State *L, int handler_ref, const int *others, int n, pid_t *pid);

/* Sends one message (header + up to two byte ranges); 0 or -1 with errno. */
int wmsg_send(int fd, const wmsg_header *h, const void *a, size_t a_len,
              const void *b, size_t b_len);

/* Receives one message without blocking: returns its total length and,
 * in *buf, the message (header first): in room when it fits in room_len
 * bytes, else in a malloc'd buffer; wmsg_free(*buf, room) releases it.
 * Returns 0 at EOF, -1 with errno (EAGAIN: nothing waiting). The room
 * (a caller's stack buffer) spares the worker factory a malloc and free
 * per message: after each fork every page it writes costs a fault. */
ssize_t wmsg_recv(int fd, char *room, size_t room_len, char **buf);
void wmsg_free(char *buf, const char *room);
#define WMSG_ROOM 2048

/* In a worker: sends PROGRESS(text) for the running cleaning (at most
 * WORKER_PROGRESS_MAX bytes of it). Returns 0, or -1 outside a worker or
 * when the supervisor is gone. */
#define WORKER_PROGRESS_MAX 512
int worker_progress(const char *text, size_t len);

#endif
