/* mhd_hello.c: the benchmark reference: a minimal libmicrohttpd server
 * answering every request with a fixed 200, in the same threading mode
 * as `bosk server` (epoll, one thread per CPU, up to 8). Built and run by
 * scripts/bench_server.sh: mhd_hello PORT; stops on SIGTERM/SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <microhttpd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Answers on the second call, as bosk does, so keep-alive holds for POST. */
static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **state)
{
    static int marker;
    (void)cls; (void)url; (void)method; (void)version; (void)data;
    if (*state == NULL) {
        *state = &marker;
        return MHD_YES;
    }
    if (*size) {
        *size = 0;
        return MHD_YES;
    }
    static const char body[] = "{\"ok\":true}";
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof body - 1, (void *)body,
                                                             MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mhd_hello PORT\n");
        return 2;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD, (uint16_t)atoi(argv[1]),
        NULL, NULL, answer, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, 10000U, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024U, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "mhd_hello: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    return 0;
}
