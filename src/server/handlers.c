/* handlers.c: request routing and replies (see handlers.h).
 *
 * The request state is allocated when the request line arrives
 * (handlers_uri), with the target parsed as Go parses it. Keep-alive:
 * libmicrohttpd closes the connection when a response is queued before
 * the request's upload has been consumed, so nothing is queued on the
 * first call of the access handler for a request. Later calls consume
 * the body; the reply is queued on the call that reports
 * upload_data_size == 0.
 *
 * Durable stores (group_commit.h): the reply is built at once but queued
 * only when every change the request may have seen is durable; until
 * then the request keeps it and its connection is suspended, and the
 * access handler is called again once the committer resumes it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/godur.h"
#include "server/handlers.h"
#include "server/http_url.h"

typedef struct {
    int status;
    jbuf body;
    const char *content_type;
    int error;                 /* adds X-Content-Type-Options: nosniff */
    const char *location;
    int close;                 /* adds Connection: close */
} reply;

typedef struct {
    double started;
    jbuf body;
    int too_big;
    int called;                /* the access handler has seen it */
    http_url url;
    http_url_status url_status;
    char url_error[256];
    reply rp;                  /* built, waiting for its commit when parked */
    int parked;                /* suspended until its commit is settled */
    gc_waiter wait;
} request;

/* The parsed target of the request being dispatched on this thread. The
 * handlers read their parameters through arg(c, name), and the handler
 * runs synchronously on the thread that set it. */
static _Thread_local const http_url *dispatched_url;

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A query parameter (its first value) as Go's Query().Get returns it. */
static const char *arg(struct MHD_Connection *c, const char *name)
{
    (void)c;
    return dispatched_url ? http_url_get(dispatched_url, name) : "";
}

static void fail(reply *rp, int status, const char *text)
{
    rp->status = status;
    rp->error = 1;
    rp->content_type = "text/plain; charset=utf-8";
    jbuf_adds(&rp->body, text);
    jbuf_addc(&rp->body, '\n');
}

static void failf(reply *rp, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void failf(reply *rp, int status, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail(rp, status, msg);
}

static int status_of(ranch_code rc)
{
    switch (rc) {
    case RANCH_OK: return 200;
    case RANCH_NOT_FOUND: case RANCH_TYPE_NOT_FOUND: return 404;
    case RANCH_OWNER_MISMATCH: return 401;
    case RANCH_STATE_MISMATCH: return 409;
    case RANCH_BAD_REQUEST: return 400;
    case RANCH_TOO_LARGE: return 413;
    default: return 500;
    }
}

/* A ranch outcome: body on success; "context: error" otherwise. */
static void outcome(reply *rp, ranch_code rc, jbuf *out, const char *context)
{
    if (rc == RANCH_OK) {
        rp->status = 200;
        jbuf_add(&rp->body, out->data ? out->data : "", out->len);
        if (out->len)
            rp->content_type = "text/plain; charset=utf-8";
        return;
    }
    if (context)
        failf(rp, status_of(rc), "%s: %s", context, out->data ? out->data : "");
    else
        fail(rp, status_of(rc), out->data ? out->data : "");
}

static int is_post(reply *rp, const char *method, const char *path)
{
    if (strcmp(method, "POST") == 0)
        return 1;
    failf(rp, 405, "Method %s, %s only accepts POST.", method, path);
    return 0;
}

static void h_acquire(handlers_ctx *h, struct MHD_Connection *c, const char *method, reply *rp)
{
    if (!is_post(rp, method, "/acquire"))
        return;
    const char *type = arg(c, "type"), *state = arg(c, "state"), *dest = arg(c, "dest"),
               *owner = arg(c, "owner"), *rid = arg(c, "request_id");
    if (!*type || !*state || !*dest || !*owner) {
        failf(rp, 400, "Bad request: Type: %s, state: %s, dest: %s, owner: %s, all of them "
              "must be set in the request.", type, state, dest, owner);
        return;
    }
    /* every distinct id is kept in a queue for --request-ttl */
    if (strlen(rid) > RANCH_MAX_REQUEST_ID) {
        failf(rp, 400, "Bad request: request_id is %zu bytes, more than the %d allowed",
              strlen(rid), RANCH_MAX_REQUEST_ID);
        return;
    }
    jbuf out;
    jbuf_init(&out);
    double waited = 0;
    ranch_code rc = ranch_acquire(h->ranch, type, state, dest, owner, rid, &out, &waited);
    outcome(rp, rc, &out, "Acquire failed");
    if (rc == RANCH_OK)
        prom_observe_acquire(h->prom, type, state, dest, *rid != '\0', waited);
    jbuf_free(&out);
}

static void h_acquire_by_state(handlers_ctx *h, struct MHD_Connection *c, const char *method,
                               reply *rp)
{
    if (!is_post(rp, method, "/acquire"))
        return;
    const char *state = arg(c, "state"), *dest = arg(c, "dest"), *owner = arg(c, "owner"),
               *names = arg(c, "names");
    if (!*state || !*dest || !*owner || !*names) {
        failf(rp, 400, "state: %s, dest: %s, owner: %s, names: %s - all of them must be set "
              "in the request.", state, dest, owner, names);
        return;
    }
    jbuf out;
    jbuf_init(&out);
    outcome(rp, ranch_acquire_by_state(h->ranch, state, dest, owner, names, &out), &out,
            "AcquireByState");
    jbuf_free(&out);
}

static void h_release(handlers_ctx *h, struct MHD_Connection *c, const char *method, reply *rp)
{
    if (!is_post(rp, method, "/release"))
        return;
    const char *name = arg(c, "name"), *dest = arg(c, "dest"), *owner = arg(c, "owner");
    if (!*name || !*dest || !*owner) {
        failf(rp, 400, "Name: %s, dest: %s, owner: %s, all of them must be set in the request.",
              name, dest, owner);
        return;
    }
    jbuf out, ctx;
    jbuf_init(&out);
    jbuf_init(&ctx);
    jbuf_printf(&ctx, "Done failed: %s - %s (from %s)", name, dest, owner);
    outcome(rp, ranch_release(h->ranch, name, dest, owner, &out), &out, ctx.data);
    jbuf_free(&out);
    jbuf_free(&ctx);
}

static void h_update(handlers_ctx *h, struct MHD_Connection *c, const char *method,
                     request *rq, reply *rp)
{
    if (!is_post(rp, method, "/update"))
        return;
    const char *name = arg(c, "name"), *owner = arg(c, "owner"), *state = arg(c, "state");
    if (!*name || !*owner || !*state) {
        failf(rp, 400, "Name: %s, owner: %s, state : %s, all of them must be set in the request.",
              name, owner, state);
        return;
    }
    /* Parsed (linear) before the ranch lock; a bad body is a 400 before the
     * owner is looked at, as upstream decodes it first. */
    char err[512];
    gojson_update *upd;
    if (gojson_update_parse(rq->body.data, rq->body.len, &upd, err, sizeof err) != 0) {
        fail(rp, 400, err);
        return;
    }
    jbuf out, ctx;
    jbuf_init(&out);
    jbuf_init(&ctx);
    jbuf_printf(&ctx, "Update failed: %s - %s (%s)", name, state, owner);
    outcome(rp, ranch_update(h->ranch, name, owner, state, upd, &out), &out, ctx.data);
    gojson_update_free(upd);
    jbuf_free(&out);
    jbuf_free(&ctx);
}

static void h_reset(handlers_ctx *h, struct MHD_Connection *c, const char *method, reply *rp)
{
    if (!is_post(rp, method, "/reset"))
        return;
    const char *type = arg(c, "type"), *state = arg(c, "state"), *expire = arg(c, "expire"),
               *dest = arg(c, "dest");
    if (!*type || !*state || !*expire || !*dest) {
        failf(rp, 400, "Type: %s, state: %s, expire: %s, dest: %s, all of them must be set in "
              "the request.", type, state, expire, dest);
        return;
    }
    int64_t ns;
    char err[512];
    if (godur_parse(expire, strlen(expire), &ns, err, sizeof err) != 0) {
        fail(rp, 400, err);
        return;
    }
    jbuf out;
    jbuf_init(&out);
    outcome(rp, ranch_reset(h->ranch, type, state, ns, dest, &out), &out, "could not reset states");
    jbuf_free(&out);
}

static void h_metric(handlers_ctx *h, struct MHD_Connection *c, const char *method, reply *rp)
{
    if (strcmp(method, "GET") != 0) {
        fail(rp, 405, "/metric only accepts GET");
        return;
    }
    const char *type = arg(c, "type");
    if (!*type) {
        fail(rp, 400, "Type must be set in the request.");
        return;
    }
    jbuf out;
    jbuf_init(&out);
    ranch_code rc = ranch_metric(h->ranch, type, &out);
    outcome(rp, rc, &out, NULL);
    if (rc == RANCH_OK)
        rp->content_type = "application/json";
    jbuf_free(&out);
}

static int is_get(reply *rp, const char *method, const char *path)
{
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return 1;
    failf(rp, 405, "Method %s, %s only accepts GET.", method, path);
    return 0;
}

static void h_resources(handlers_ctx *h, struct MHD_Connection *c, const char *method, reply *rp)
{
    if (!is_get(rp, method, "/resources"))
        return;
    jbuf out;
    jbuf_init(&out);
    ranch_list(h->ranch, arg(c, "type"), arg(c, "state"), arg(c, "owner"), &out);
    outcome(rp, RANCH_OK, &out, NULL);
    rp->content_type = "application/json";
    jbuf_free(&out);
}

/* limit: absent means all; otherwise a whole number from 1 (a larger one
 * than the history holds means all). */
static int parse_limit(const char *text, size_t *limit)
{
    *limit = 0;
    if (*text == '\0')
        return 0;
    size_t v = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9' || p - text >= 9)
            return -1;
        v = v * 10 + (size_t)(*p - '0');
    }
    *limit = v;
    return v > 0 ? 0 : -1;
}

static void h_history(handlers_ctx *h, struct MHD_Connection *c, const char *method, reply *rp)
{
    if (!is_get(rp, method, "/history"))
        return;
    const char *name = arg(c, "name"), *limit_text = arg(c, "limit");
    size_t limit;
    if (!*name) {
        fail(rp, 400, "Name must be set in the request.");
        return;
    }
    if (parse_limit(limit_text, &limit) != 0) {
        failf(rp, 400, "invalid limit %s: want a whole number from 1 to 999999999", limit_text);
        return;
    }
    jbuf out;
    jbuf_init(&out);
    ranch_code rc = ranch_history(h->ranch, name, limit, &out);
    outcome(rp, rc, &out, "History failed");
    if (rc == RANCH_OK)
        rp->content_type = "application/json";
    jbuf_free(&out);
}

static void h_metrics(handlers_ctx *h, const char *method, reply *rp)
{
    if (!is_get(rp, method, "/metrics"))
        return;
    rp->status = 200;
    rp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    ranch_prom_resources(h->ranch, &rp->body);
    prom_write(h->prom, &rp->body);
}

/* ---- routing ---- */

/* Go's ServeMux cleanPath: path.Clean, keeping a trailing slash. */
static char *clean_path(const char *p)
{
    size_t n = strlen(p);
    char *out = malloc(n + 3);
    if (out == NULL)
        return NULL;
    size_t w = 0;
    const char *s = p;
    while (*s) {
        while (*s == '/')
            s++;
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0 || (len == 1 && s[0] == '.')) {
            /* skip */
        } else if (len == 2 && s[0] == '.' && s[1] == '.') {
            while (w > 0 && out[--w] != '/')
                ;
        } else {
            out[w++] = '/';
            memcpy(out + w, s, len);
            w += len;
        }
        s += len;
    }
    if (w == 0)
        out[w++] = '/';
    if (n > 0 && p[n - 1] == '/' && !(w == 1 && out[0] == '/'))
        out[w++] = '/';
    out[w] = '\0';
    return out;
}

/* Go's hexEscapeNonASCII: bytes >= 0x80 as %XX (and, as they never
 * belong in a header, control bytes). */
static void hex_escape_non_ascii(jbuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x80 || ch < 0x20 || ch == 0x7f)
            jbuf_printf(b, "%%%02X", ch);
        else
            jbuf_addc(b, (char)ch);
    }
}

static void html_escape(jbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '&') jbuf_adds(b, "&amp;");
        else if (*s == '"') jbuf_adds(b, "&#34;");
        else if (*s == '<') jbuf_adds(b, "&lt;");
        else if (*s == '>') jbuf_adds(b, "&gt;");
        else if (*s == '\'') jbuf_adds(b, "&#39;");
        else jbuf_addc(b, *s);
    }
}

/* 301 to the cleaned path, as Go's ServeMux answers: the path escaped as
 * URL.EscapedPath writes it (so a decoded CR LF travels as %0D%0A), the
 * raw query kept as sent. */
static void redirect(const http_url *u, const char *method, const char *clean, reply *rp)
{
    jbuf target, loc;
    jbuf_init(&target);
    jbuf_init(&loc);
    http_url_escape_path(&target, clean);
    if (u->raw_query[0]) {
        jbuf_addc(&target, '?');
        jbuf_adds(&target, u->raw_query);
    }
    hex_escape_non_ascii(&loc, target.data ? target.data : "");
    if (target.oom || loc.oom || loc.data == NULL) {
        fail(rp, 500, "out of memory");
    } else {
        rp->status = 301;
        rp->location = strdup(loc.data);
        if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
            rp->content_type = "text/html; charset=utf-8";
            jbuf_adds(&rp->body, "<a href=\"");
            html_escape(&rp->body, target.data);
            jbuf_adds(&rp->body, "\">Moved Permanently</a>.\n\n");
        }
    }
    jbuf_free(&target);
    jbuf_free(&loc);
}

static const char *const api_paths[] = {
    "/acquire", "/acquirebystate", "/release", "/reset", "/update", "/metric", "/resources",
    "/history",
};

static const char *metric_path(const char *url)
{
    for (size_t i = 0; i < sizeof api_paths / sizeof api_paths[0]; i++)
        if (strcmp(url, api_paths[i]) == 0)
            return api_paths[i];
    return "unmatched";
}

static void route(handlers_ctx *h, struct MHD_Connection *c, const char *url,
                  const char *method, request *rq, reply *rp)
{
    if (h->metrics_only) {
        if (strcmp(url, "/metrics") == 0)
            h_metrics(h, method, rp);
        else
            fail(rp, 404, "404 page not found");
        return;
    }
    if (strcmp(url, "/acquire") == 0) h_acquire(h, c, method, rp);
    else if (strcmp(url, "/acquirebystate") == 0) h_acquire_by_state(h, c, method, rp);
    else if (strcmp(url, "/release") == 0) h_release(h, c, method, rp);
    else if (strcmp(url, "/update") == 0) h_update(h, c, method, rq, rp);
    else if (strcmp(url, "/reset") == 0) h_reset(h, c, method, rp);
    else if (strcmp(url, "/metric") == 0) h_metric(h, c, method, rp);
    else if (strcmp(url, "/metrics") == 0) h_metrics(h, method, rp);
    else if (strcmp(url, "/resources") == 0) h_resources(h, c, method, rp);
    else if (strcmp(url, "/history") == 0) h_history(h, c, method, rp);
    else rp->status = 200;      /* upstream's health catch-all */
}

/* A target Go's ParseRequestURI refuses: Go's server answers with these
 * exact bytes and closes the connection. */
static void bad_target(reply *rp)
{
    rp->status = 400;
    rp->content_type = "text/plain; charset=utf-8";
    rp->close = 1;
    jbuf_adds(&rp->body, "400 Bad Request");
}

static void dispatch(handlers_ctx *h, struct MHD_Connection *c, const char *method,
                     request *rq, reply *rp)
{
    if (rq->url_status == HTTP_URL_BAD_TARGET) {
        bad_target(rp);
        return;
    }
    if (rq->url_status != HTTP_URL_OK) {
        fail(rp, rq->url_status == HTTP_URL_REFUSED ? 400 : 500, rq->url_error);
        return;
    }
    if (rq->too_big) {
        failf(rp, 413, "request body larger than %d bytes", HANDLERS_MAX_BODY);
        return;
    }
    const char *path = rq->url.path;
    char *clean = clean_path(*path ? path : "/");
    if (clean == NULL) {
        fail(rp, 500, "out of memory");
    } else if (strcmp(clean, path) != 0) {
        redirect(&rq->url, method, clean, rp);
    } else {
        dispatched_url = &rq->url;
        route(h, c, path, method, rq, rp);
        dispatched_url = NULL;
    }
    free(clean);
}

/* ---- libmicrohttpd callbacks ---- */

static enum MHD_Result send_reply(struct MHD_Connection *c, reply *rp)
{
    size_t len = rp->body.oom ? 0 : rp->body.len;
    struct MHD_Response *resp;
    if (len)
        resp = dl_mhd.create_response_from_buffer(len, rp->body.data, MHD_RESPMEM_MUST_FREE);
    else
        resp = dl_mhd.create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    if (len)
        jbuf_init(&rp->body);     /* MHD frees the data now */
    if (rp->content_type)
        dl_mhd.add_response_header(resp, "Content-Type", rp->content_type);
    if (rp->error)
        dl_mhd.add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (rp->location)
        dl_mhd.add_response_header(resp, "Location", rp->location);
    if (rp->close)
        dl_mhd.add_response_header(resp, "Connection", "close");
    enum MHD_Result ok = dl_mhd.queue_response(c, (unsigned)rp->status, resp);
    dl_mhd.destroy_response(resp);
    return ok;
}

static void consume(request *rq, const char *data, size_t n)
{
    if (rq->too_big)
        return;
    if (rq->body.len + n > HANDLERS_MAX_BODY) {
        rq->too_big = 1;
        jbuf_free(&rq->body);
        return;
    }
    jbuf_add(&rq->body, data, n);
}

/* The request saw changes that a failed commit undid: whatever it was
 * about to answer, nothing it did or saw holds. */
static void storage_failed(reply *rp)
{
    jbuf_free(&rp->body);
    jbuf_init(&rp->body);
    free((void *)rp->location);
    *rp = (reply){ 500, rp->body, NULL, 0, NULL, 0 };
    fail(rp, 500, "storage error: the change could not be made durable and was undone; "
         "try again");
}

/* Queues the request's reply. */
static enum MHD_Result answer(handlers_ctx *h, struct MHD_Connection *conn, const char *method,
                              request *rq)
{
    reply *rp = &rq->rp;
    size_t size = rp->body.len;
    enum MHD_Result ok = send_reply(conn, rp);
    if (h->guard)
        conn_guard_sending(h->guard, conn);
    const char *ua = dl_mhd.lookup_connection_value(conn, MHD_HEADER_KIND, "User-Agent");
    prom_observe_http(h->prom, rq->url_status == HTTP_URL_OK ? metric_path(rq->url.path) : "unmatched",
                      method, rp->status, ua, mono_seconds() - rq->started, size);
    jbuf_free(&rp->body);
    free((void *)rp->location);
    rp->location = NULL;
    return ok;
}

void *handlers_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    handlers_ctx *h = cls;
    request *rq = calloc(1, sizeof *rq);
    if (rq == NULL)
        return NULL;           /* the access handler then drops the connection */
    rq->started = mono_seconds();
    jbuf_init(&rq->body);
    rq->url_status = http_url_parse(uri, &rq->url, rq->url_error, sizeof rq->url_error);
    /* libmicrohttpd parses the query from this same buffer right after
     * this call; ending it after the '?' leaves it nothing to parse. Its
     * parse is not used (arg() reads rq->url), and past a few hundred
     * parameters it runs out of per-connection memory and never answers. */
    char *query = strchr(uri, '?');
    if (query != NULL)
        query[1] = '\0';
    __atomic_add_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
    return rq;
}

enum MHD_Result handlers_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls)
{
    handlers_ctx *h = cls;
    request *rq = *con_cls;
    if (rq == NULL)
        return MHD_NO;
    if (!rq->called) {
        rq->called = 1;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (rq->url.path && strcmp(rq->url.path, "/update") == 0)
            consume(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->parked) {
        rq->parked = 0;        /* resumed: its commit is settled */
        if (rq->wait.failed)
            storage_failed(&rq->rp);
        return answer(h, conn, method, rq);
    }
    if (h->guard)
        conn_guard_handling(h->guard, conn);
    rq->rp = (reply){ 500, { 0 }, NULL, 0, NULL, 0 };
    jbuf_init(&rq->rp.body);
    dispatch(h, conn, method, rq, &rq->rp);
    if (h->gc != NULL) {
        /* parked before waiting: the resume may come before this returns */
        rq->parked = 1;
        gc_wait w = group_commit_wait(h->gc, &rq->wait, conn, group_commit_seen(h->gc));
        if (w == GC_PARKED)
            return MHD_YES;
        rq->parked = 0;
        if (w == GC_FAILED)
            storage_failed(&rq->rp);
    }
    return answer(h, conn, method, rq);
}

void handlers_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    handlers_ctx *h = cls;
    request *rq = *con_cls;
    if (h->guard)
        conn_guard_receiving(h->guard, conn);
    if (rq == NULL)
        return;
    http_url_free(&rq->url);
    jbuf_free(&rq->body);
    jbuf_free(&rq->rp.body);
    free((void *)rq->rp.location);
    free(rq);
    *con_cls = NULL;
    __atomic_sub_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
}
