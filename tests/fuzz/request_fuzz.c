/* request_fuzz.c: one HTTP request through the server's public entry point
 * (handlers_access in src/server/handlers.c) against a real ranch over the
 * memory store: routing, path cleaning and redirects, query arguments and
 * the /update body. libmicrohttpd's connection is faked and the reply is
 * captured instead of sent. Where the server reads the raw target itself
 * (handlers_uri, libmicrohttpd's URI log callback, with http_url.c) the
 * harness hands it the raw target as libmicrohttpd would; otherwise it
 * splits and percent-decodes the target as libmicrohttpd does (with its
 * own MHD_http_unescape) and serves the arguments through the fake.
 *
 * Input: "METHOD TARGET" on the first line (no space: POST), then the body.
 * Invariants: every request gets a reply with a real status, and a 301
 * carries a Location header that libmicrohttpd accepted. */
#include <string.h>
#include "fuzz.h"
#include "server/handlers.h"

#define MAX_ARGS 64

/* Weak: a tree without it links, and the harness takes the other path. */
void *handlers_uri(void *cls, const char *uri, struct MHD_Connection *conn)
    __attribute__((weak));

struct MHD_Connection {          /* the fake: what one request carries */
    char *keys[MAX_ARGS], *values[MAX_ARGS];
    size_t n_args;
    unsigned status;
    int queued, location_ok, location_set;
};

static const char *fake_lookup(struct MHD_Connection *c, enum MHD_ValueKind kind,
                               const char *key)
{
    if (kind != MHD_GET_ARGUMENT_KIND || key == NULL)
        return NULL;
    for (size_t i = 0; i < c->n_args; i++)
        if (strcmp(c->keys[i], key) == 0)
            return c->values[i];
    return NULL;
}

static int fake_values(struct MHD_Connection *c, enum MHD_ValueKind kind,
                       MHD_KeyValueIterator it, void *cls)
{
    if (kind != MHD_GET_ARGUMENT_KIND)
        return 0;
    for (size_t i = 0; i < c->n_args; i++)
        if (it != NULL && it(cls, kind, c->keys[i], c->values[i]) != MHD_YES)
            return (int)i + 1;
    return (int)c->n_args;
}

static const union MHD_ConnectionInfo *fake_info(struct MHD_Connection *c,
                                                 enum MHD_ConnectionInfoType type, ...)
{
    return NULL;
}

static enum MHD_Result fake_queue(struct MHD_Connection *c, unsigned int status,
                                  struct MHD_Response *r)
{
    c->status = status;
    c->queued++;
    return MHD_YES;
}

static struct MHD_Connection *current;
static __typeof__(MHD_add_response_header) *real_add_header;

static enum MHD_Result watch_header(struct MHD_Response *r, const char *name, const char *value)
{
    enum MHD_Result ok = real_add_header(r, name, value);
    if (current != NULL && strcmp(name, "Location") == 0) {
        current->location_set = 1;
        current->location_ok = ok == MHD_YES && value != NULL && *value != '\0';
    }
    return ok;
}

static const char config_yaml[] =
    "resources:\n"
    "- type: t\n  state: free\n  names: [a, b, c]\n"
    "- type: d\n  state: dirty\n  min-count: 1\n  max-count: 2\n  lifespan: 1h\n";

static handlers_ctx ctx;
static unsigned long runs;

/* A fresh ranch every few thousand requests keeps the state (leases,
 * request ids, dynamic resources) bounded and the runs comparable. */
static void setup_ranch(void)
{
    char err[1024];
    if (ctx.ranch != NULL)
        ranch_free(ctx.ranch);
    store *st = store_memory_open();
    FUZZ_CHECK(st != NULL);
    ctx.ranch = ranch_new(st, 1000000000LL, err, sizeof err);
    FUZZ_CHECK(ctx.ranch != NULL);
    config *cfg = config_parse(config_yaml, sizeof config_yaml - 1, "fuzz.yaml", err, sizeof err);
    FUZZ_CHECK(cfg != NULL);
    FUZZ_CHECK(ranch_load(ctx.ranch, err, sizeof err) == 0);
    FUZZ_CHECK(ranch_sync(ctx.ranch, cfg, err, sizeof err) == 0);
}

static void setup(void)
{
    char err[512];
    FUZZ_CHECK(dl_mhd_load(err, sizeof err) == 0);
    dl_mhd.lookup_connection_value = fake_lookup;
    dl_mhd.get_connection_values = fake_values;
    dl_mhd.get_connection_info = fake_info;
    dl_mhd.queue_response = fake_queue;
    real_add_header = dl_mhd.add_response_header;
    dl_mhd.add_response_header = watch_header;
    ctx.prom = prom_new();
    FUZZ_CHECK(ctx.prom != NULL);
}

/* Splits the query as libmicrohttpd does: pairs at '&', key and value at
 * the first '=', each percent-decoded in place. */
static void parse_query(struct MHD_Connection *c, char *q)
{
    while (q != NULL && c->n_args < MAX_ARGS) {
        char *next = strchr(q, '&');
        if (next != NULL)
            *next++ = '\0';
        if (*q != '\0') {
            char *eq = strchr(q, '=');
            if (eq != NULL)
                *eq++ = '\0';
            MHD_http_unescape(q);
            c->keys[c->n_args] = q;
            c->values[c->n_args++] = eq != NULL ? (MHD_http_unescape(eq), eq) : NULL;
        }
        q = next;
    }
}

static void serve(struct MHD_Connection *c, const char *method, char *raw_target,
                  const char *url, const char *body, size_t body_len)
{
    void *state = handlers_uri ? handlers_uri(&ctx, raw_target, c) : NULL;
    size_t zero = 0, left = body_len;
    FUZZ_CHECK(handlers_access(&ctx, c, url, method, "HTTP/1.1", NULL, &zero, &state) == MHD_YES);
    if (left > 0)
        handlers_access(&ctx, c, url, method, "HTTP/1.1", body, &left, &state);
    zero = 0;
    handlers_access(&ctx, c, url, method, "HTTP/1.1", NULL, &zero, &state);
    handlers_completed(&ctx, c, &state, MHD_REQUEST_TERMINATED_COMPLETED_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ctx.prom == NULL)
        setup();
    if (runs++ % 4096 == 0)
        setup_ranch();
    const char *text = (const char *)data, *nl = memchr(text, '\n', size);
    size_t line_len = nl ? (size_t)(nl - text) : size;
    char *line = strndup(text, line_len);          /* also stops at a NUL */
    if (line == NULL)
        return 0;
    char *sp = strchr(line, ' '), *target = sp ? sp + 1 : line;
    const char *method = sp ? (*sp = '\0', line) : "POST";
    char *raw_target = strdup(target), *q = strchr(target, '?');
    if (raw_target == NULL) {
        free(line);
        return 0;
    }
    if (q != NULL)
        *q++ = '\0';
    MHD_http_unescape(target);
    struct MHD_Connection c = { .n_args = 0 };
    parse_query(&c, q);
    current = &c;
    serve(&c, method, raw_target, target, nl ? nl + 1 : "", nl ? size - line_len - 1 : 0);
    current = NULL;
    free(raw_target);
    FUZZ_CHECK(c.queued == 1);
    FUZZ_CHECK(c.status >= 200 && c.status < 600);
    if (c.status == 301)
        FUZZ_CHECK(c.location_set && c.location_ok);
    free(line);
    return 0;
}
