/* transport_test.c: the C transport (transport.h) against a tiny server
 * thread on 127.0.0.1: status line capture, keep-alive (one accepted
 * connection for several requests), the body cap, refused connects, and
 * a transport per thread. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "unit.h"
#include "client/transport.h"

typedef struct {
    int listen_fd;
    int port;
    int accepted;       /* connections accepted */
    int requests;       /* requests answered */
    const char *reply;  /* full HTTP response sent for each request */
    char last[4096];    /* the last request's head and body, as read */
} server;

/* Reads one request (head, and a body when Content-Length says so) into buf. */
static int read_request(int fd, char *buf, size_t size)
{
    size_t used = 0;
    const char *head_end = NULL;
    size_t body_len = 0;
    while (used < size - 1) {
        if (head_end != NULL && used >= (size_t)(head_end + 4 - buf) + body_len)
            return 0;
        ssize_t n = read(fd, buf + used, size - 1 - used);
        if (n <= 0)
            return -1;
        used += (size_t)n;
        buf[used] = '\0';
        if (head_end == NULL && (head_end = strstr(buf, "\r\n\r\n")) != NULL) {
            const char *len = strstr(buf, "Content-Length: ");
            body_len = len != NULL && len < head_end ? strtoul(len + 16, NULL, 10) : 0;
        }
    }
    return -1;
}

static void *serve(void *arg)
{
    server *s = arg;
    for (;;) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        s->accepted++;
        while (read_request(fd, s->last, sizeof s->last) == 0) {
            s->requests++;
            if (write(fd, s->reply, strlen(s->reply)) < 0)
                break;
        }
        close(fd);
    }
}

static int start(server *s, pthread_t *th, const char *reply)
{
    memset(s, 0, sizeof *s);
    s->reply = reply;
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(s->listen_fd, 8) != 0 || getsockname(s->listen_fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(th, NULL, serve, s);
}

static void stop(server *s, pthread_t th)
{
    shutdown(s->listen_fd, SHUT_RDWR);
    close(s->listen_fd);
    pthread_join(th, NULL);
}

static void test_status_line_and_keepalive(void)
{
    server s;
    pthread_t th;
    CHECK(start(&s, &th, "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope\n") == 0);
    char err[256], url[128];
    transport *t = transport_new(err, sizeof err);
    CHECK(t != NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", s.port);
    transport_request req = { .method = "POST", .url = url, .connect_timeout = 2, .timeout = 5,
                              .max_body = 1024 };
    for (int i = 0; i < 3; i++) {
        transport_response resp;
        CHECK(transport_perform(t, &req, &resp) == 0);
        CHECK(resp.status == 404);
        CHECK_STR(resp.status_line, "404 Not Found");
        CHECK(resp.body_len == 5 && memcmp(resp.body, "nope\n", 5) == 0);
        transport_response_free(&resp);
    }
    CHECK(s.requests == 3);
    CHECK(s.accepted == 1);
    transport_free(t);
    stop(&s, th);
}

static void test_too_large(void)
{
    server s;
    pthread_t th;
    CHECK(start(&s, &th, "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\nxxxx") == 0);
    char err[256], url[128];
    transport *t = transport_new(err, sizeof err);
    CHECK(t != NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/big", s.port);
    transport_request req = { .method = "GET", .url = url, .timeout = 5, .max_body = 1 << 20 };
    transport_response resp;
    CHECK(transport_perform(t, &req, &resp) == -1);
    CHECK(resp.kind == TRANSPORT_TOO_LARGE);
    CHECK(resp.body == NULL);
    CHECK(strstr(resp.error, "larger than 1048576 bytes") != NULL);
    transport_response_free(&resp);
    transport_free(t);
    stop(&s, th);
}

static void test_refused(void)
{
    server s;
    pthread_t th;
    CHECK(start(&s, &th, "") == 0);
    int port = s.port;
    stop(&s, th); /* the port is now closed */
    char err[256], url[128];
    transport *t = transport_new(err, sizeof err);
    CHECK(t != NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/acquire", port);
    transport_request req = { .method = "POST", .url = url, .connect_timeout = 2, .timeout = 5 };
    transport_response resp;
    CHECK(transport_perform(t, &req, &resp) == -1);
    CHECK(resp.kind == TRANSPORT_CONNECT);
    CHECK(resp.status == 0);
    CHECK(strncmp(resp.error, "Post \"http://127.0.0.1:", 23) == 0);
    transport_response_free(&resp);
    transport_free(t);
}

/* One request; checks its status and body, and recycles the response. */
static void request_body(transport *t, const transport_request *req, const char *want_body)
{
    transport_response resp;
    CHECK(transport_perform(t, req, &resp) == 0);
    CHECK(resp.status == 200);
    CHECK(resp.body != NULL && resp.body_len == strlen(want_body));
    CHECK_STR(resp.body, want_body); /* NUL-terminated right after the body */
    transport_recycle(t, &resp);
    CHECK(resp.body == NULL && resp.body_len == 0);
}

/* A recycled buffer serves the next response: shorter and empty bodies
 * read right, and a large one is freed rather than kept (leaks show
 * under make test SANITIZE=1). One server, whose reply changes between
 * requests (each is sent only after the change). */
static void test_recycled_body(void)
{
    static char replies[4][100100];
    const size_t body_lens[] = {3000, 0, 2, 100000};
    server s;
    pthread_t th;
    CHECK(start(&s, &th, "") == 0);
    char err[256], url[128];
    transport *t = transport_new(err, sizeof err);
    CHECK(t != NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/r", s.port);
    transport_request req = { .method = "GET", .url = url, .timeout = 5 };
    for (int i = 0; t != NULL && i < 4; i++) {
        char *reply = replies[i];
        int head = snprintf(reply, sizeof replies[i], "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                            body_lens[i]);
        memset(reply + head, 'a' + i, body_lens[i]);
        reply[head + body_lens[i]] = '\0';
        s.reply = reply;
        request_body(t, &req, reply + head);
    }
    CHECK(s.accepted == 1);
    transport_free(t);
    stop(&s, th);
}

/* A bodiless POST repeated keeps the handle's method options; a request
 * of another kind between two of them sets its own and they come back. */
static void test_method_changes(void)
{
    server s;
    pthread_t th;
    CHECK(start(&s, &th, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") == 0);
    char err[256], url[128];
    transport *t = transport_new(err, sizeof err);
    CHECK(t != NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/m", s.port);
    transport_request post = { .method = "POST", .url = url, .timeout = 5 };
    transport_request with_body = { .method = "POST", .url = url, .timeout = 5, .body = "abc", .body_len = 3,
                                     .content_type = "application/json" };
    transport_request get = { .method = "GET", .url = url, .timeout = 5 };
    const transport_request *seq[] = {&post, &post, &with_body, &post, &get, &post, &post};
    const char *want[] = {"POST /m", "POST /m", "POST /m", "POST /m", "GET /m", "POST /m", "POST /m"};
    for (size_t i = 0; t != NULL && i < sizeof seq / sizeof seq[0]; i++) {
        request_body(t, seq[i], "");
        CHECK(strncmp(s.last, want[i], strlen(want[i])) == 0);
        int bodiless_post = seq[i] == &post;
        CHECK((strstr(s.last, "Content-Length: 0\r\n") != NULL) == bodiless_post);
        CHECK((strstr(s.last, "\r\n\r\nabc") != NULL) == (seq[i] == &with_body));
    }
    transport_free(t);
    stop(&s, th);
}

static void *thread_requests(void *arg)
{
    const char *url = arg;
    char err[256];
    transport *t = transport_new(err, sizeof err);
    long ok = 0;
    for (int i = 0; t && i < 20; i++) {
        transport_request req = { .method = "GET", .url = url, .timeout = 5 };
        transport_response resp;
        if (transport_perform(t, &req, &resp) == 0 && resp.status == 200)
            ok++;
        transport_response_free(&resp);
    }
    transport_free(t);
    return (void *)ok;
}

static void test_threads(void)
{
    server s;
    pthread_t th, workers[2];
    CHECK(start(&s, &th, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    /* The tiny server serves one connection at a time: run the workers one
     * after the other, each with its own transport, racing only on loading. */
    for (int i = 0; i < 2; i++) {
        void *ok = NULL;
        CHECK(pthread_create(&workers[i], NULL, thread_requests, url) == 0);
        pthread_join(workers[i], &ok);
        CHECK((long)ok == 20);
    }
    stop(&s, th);
}

int main(void)
{
    RUN(test_status_line_and_keepalive);
    RUN(test_too_large);
    RUN(test_refused);
    RUN(test_threads);
    RUN(test_recycled_body);
    RUN(test_method_changes);
    UNIT_EXIT();
}
