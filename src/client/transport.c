/* transport.c: the HTTP exchange behind bosk's clients (transport.h).
 *
 * One libcurl easy handle per transport, so libcurl's connection cache
 * keeps one TCP connection alive across requests. The write and header
 * callbacks only copy bytes and set flags: they never call into Lua, and
 * they stop a response that grows past max_body before it is buffered. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "client/dl_curl.h"
#include "client/transport.h"

/* What the callbacks fill in during one transport_perform. */
typedef struct {
    transport_response *resp;
    size_t max_body;
    int too_large;
    int oom;
} exchange;

struct transport {
    const dl_curl_api *curl;
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
    char noproxy[1024];
    /* Header lists are built once per Content-Type and kept: most requests
     * reuse the previous one. */
    struct curl_slist *plain_headers;   /* no Content-Type */
    struct curl_slist *typed_headers;   /* with typed_for's Content-Type */
    char typed_for[200];
    int had_auth, had_custom;
    int empty_post_set; /* the handle is set for a POST without body */
    /* What the handle was last given, so unchanged options are not set
     * again: each setopt costs a little, and a request is a few µs. */
    const struct curl_slist *headers_set;
    long connect_ms_set, timeout_ms_set;
    exchange x; /* the callbacks' state, set as WRITEDATA/HEADERDATA once */
    /* A body buffer handed back by transport_recycle, for the next
     * response: a fresh 1 KiB malloc per request is a large-bin request,
     * which makes glibc consolidate every small chunk Lua freed since. */
    char *spare;
    size_t spare_cap;
};

/* A spare buffer larger than this is freed rather than kept. */
#define SPARE_MAX ((size_t)64 << 10)

static CURLcode set_fixed_options(transport *t);
static CURLcode set_handler_options(transport *t, CURLcode rc);

transport *transport_new(char *err, size_t err_len)
{
    const dl_curl_api *curl = dl_curl(err, err_len);
    if (curl == NULL)
        return NULL;
    transport *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, err_len, "transport: out of memory");
        return NULL;
    }
    t->curl = curl;
    t->connect_ms_set = t->timeout_ms_set = -1; /* never a real value: the first request sets them */
    t->easy = curl->easy_init();
    if (t->easy == NULL) {
        free(t);
        snprintf(err, err_len, "transport: curl_easy_init failed");
        return NULL;
    }
    CURLcode rc = set_fixed_options(t);
    if (rc != CURLE_OK) {
        snprintf(err, err_len, "transport: cannot set libcurl options: %s", curl->easy_strerror(rc));
        transport_free(t);
        return NULL;
    }
    return t;
}

void transport_free(transport *t)
{
    if (t == NULL)
        return;
    t->curl->easy_cleanup(t->easy);
    t->curl->slist_free_all(t->plain_headers);
    t->curl->slist_free_all(t->typed_headers);
    free(t->spare);
    free(t);
}

void transport_recycle(transport *t, transport_response *resp)
{
    if (t == NULL || resp->body == NULL || t->spare != NULL || resp->body_cap > SPARE_MAX) {
        transport_response_free(resp);
        return;
    }
    t->spare = resp->body;
    t->spare_cap = resp->body_cap;
    resp->body = NULL;
    resp->body_len = resp->body_cap = 0;
}

void transport_response_free(transport_response *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = resp->body_cap = 0;
}

static int grow(exchange *x, size_t need)
{
    transport_response *resp = x->resp;
    if (need <= resp->body_cap)
        return 0;
    size_t cap = resp->body_cap ? resp->body_cap : 1024;
    while (cap < need)
        cap *= 2;
    char *p = realloc(resp->body, cap);
    if (p == NULL)
        return -1;
    resp->body = p;
    resp->body_cap = cap;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    exchange *x = userp;
    size_t len = size * n;
    transport_response *resp = x->resp;
    if (len > x->max_body - resp->body_len) {
        x->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (grow(x, resp->body_len + len + 1) != 0) {
        x->oom = 1;
        return 0;
    }
    memcpy(resp->body + resp->body_len, data, len);
    resp->body_len += len;
    resp->body[resp->body_len] = '\0';
    return len;
}

/* "HTTP/1.1 404 Not Found\r\n" -> status_line "404 Not Found" (Go's resp.Status). */
static void keep_status_line(exchange *x, const char *line, size_t len)
{
    const char *sp = memchr(line, ' ', len);
    if (sp == NULL)
        return;
    size_t rest = len - (size_t)(sp + 1 - line);
    while (rest > 0 && (sp[rest] == '\r' || sp[rest] == '\n'))
        rest--;
    if (rest >= sizeof x->resp->status_line)
        rest = sizeof x->resp->status_line - 1;
    memcpy(x->resp->status_line, sp + 1, rest);
    x->resp->status_line[rest] = '\0';
    x->resp->body_len = 0; /* a new response (after 100 Continue or a retry) */
}

/* Content-Length over the cap: fail before reading any of the body. */
static void check_length(exchange *x, const char *line, size_t len)
{
    static const char name[] = "content-length:";
    if (len <= sizeof name - 1 || strncasecmp(line, name, sizeof name - 1) != 0)
        return;
    char digits[32];
    size_t n = len - (sizeof name - 1);
    if (n >= sizeof digits)
        n = sizeof digits - 1;
    memcpy(digits, line + sizeof name - 1, n);
    digits[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(digits, &end, 10);
    if (errno == 0 && end != digits && v > x->max_body)
        x->too_large = 1;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    exchange *x = userp;
    size_t len = size * n;
    if (len > 5 && memcmp(data, "HTTP/", 5) == 0)
        keep_status_line(x, data, len);
    else
        check_length(x, data, len);
    return x->too_large ? 0 : len;
}

/* A header list: no Expect (Go never waits for 100-continue), no Accept,
 * "User-Agent: bosk", and Content-Type only when asked (libcurl would add a
 * form type). User-Agent is a listed header, not CURLOPT_USERAGENT: the
 * bytes sent are the same (libcurl puts it after Host and Authorization
 * either way), but the option makes libcurl format the header anew for
 * every request, about 4000 instructions each. */
static struct curl_slist *build_headers(transport *t, const char *content_type)
{
    const dl_curl_api *c = t->curl;
    char ctype[256];
    struct curl_slist *h = c->slist_append(NULL, "Expect:");
    if (h == NULL || c->slist_append(h, "Accept:") == NULL ||
        c->slist_append(h, "User-Agent: bosk") == NULL)
        goto fail;
    snprintf(ctype, sizeof ctype, "Content-Type:%s%s", content_type ? " " : "",
             content_type ? content_type : "");
    if (c->slist_append(h, ctype) == NULL)
        goto fail;
    return h;
fail:
    c->slist_free_all(h);
    return NULL;
}

/* The cached header list for this Content-Type, or NULL when out of memory. */
static struct curl_slist *headers_for(transport *t, const char *content_type)
{
    if (content_type == NULL) {
        if (t->plain_headers == NULL)
            t->plain_headers = build_headers(t, NULL);
        return t->plain_headers;
    }
    if (t->typed_headers && strcmp(t->typed_for, content_type) == 0)
        return t->typed_headers;
    if (strlen(content_type) >= sizeof t->typed_for)
        return NULL;
    struct curl_slist *h = build_headers(t, content_type);
    if (h == NULL)
        return NULL;
    if (t->headers_set == t->typed_headers)
        t->headers_set = NULL; /* freed below: the next request sets the new list */
    t->curl->slist_free_all(t->typed_headers);
    t->typed_headers = h;
    snprintf(t->typed_for, sizeof t->typed_for, "%s", content_type);
    return h;
}

/* Every libcurl option goes through SETOPT, which keeps the first failure
 * in *rc (libcurl copies strings, so setting one can run out of memory). */
#define SETOPT(rc, t, opt, val) do { \
        CURLcode setopt_rc_ = (t)->curl->easy_setopt((t)->easy, (opt), (val)); \
        if (*(rc) == CURLE_OK) \
            *(rc) = setopt_rc_; \
    } while (0)

/* Whether the environment names a proxy for an http or https URL: the
 * variables libcurl reads for them (and HTTP_PROXY, which it ignores, to
 * be safe); an empty one counts too, as libcurl would then decide. */
static int proxy_in_environment(void)
{
    static const char *const names[] = {
        "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (getenv(names[i]) != NULL)
            return 1;
    return 0;
}

/* Options that never change for a transport. Go's loopback rule is kept
 * too: 127.0.0.1 and localhost never go through a proxy.
 * libcurl looks for a proxy on every request: it walks the no-proxy list
 * (two inet_pton calls per address in it: 127.0.0.1 comes first, as the
 * common host) and reads the proxy variables again. Without any proxy
 * variable at the start there is no proxy to bypass: an empty CURLOPT_PROXY
 * says so once (libcurl then reads no variable) and the list stays empty. */
static CURLcode set_fixed_options(transport *t)
{
    CURLcode rc = CURLE_OK;
    if (!proxy_in_environment()) {
        SETOPT(&rc, t, CURLOPT_PROXY, "");
        SETOPT(&rc, t, CURLOPT_NOPROXY, "");
        return set_handler_options(t, rc);
    }
    const char *env = getenv("NO_PROXY");
    if (env == NULL || *env == '\0')
        env = getenv("no_proxy");
    snprintf(t->noproxy, sizeof t->noproxy, "127.0.0.1,localhost,::1%s%s",
             env && *env ? "," : "", env && *env ? env : "");
    SETOPT(&rc, t, CURLOPT_NOPROXY, t->noproxy);
    return set_handler_options(t, rc);
}

/* The rest of set_fixed_options; rc: the first failure so far. */
static CURLcode set_handler_options(transport *t, CURLcode rc)
{
    SETOPT(&rc, t, CURLOPT_NOSIGNAL, 1L);
    SETOPT(&rc, t, CURLOPT_ERRORBUFFER, t->errbuf);
    SETOPT(&rc, t, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(&rc, t, CURLOPT_TCP_NODELAY, 1L);
    SETOPT(&rc, t, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(&rc, t, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(&rc, t, CURLOPT_WRITEDATA, &t->x);
    SETOPT(&rc, t, CURLOPT_HEADERDATA, &t->x);
    return rc;
}

static CURLcode set_method(transport *t, const transport_request *req)
{
    CURLcode rc = CURLE_OK;
    const char *method = req->method ? req->method : "GET";
    if (t->had_custom) {
        SETOPT(&rc, t, CURLOPT_CUSTOMREQUEST, (char *)NULL);
        SETOPT(&rc, t, CURLOPT_NOBODY, 0L);
        t->had_custom = 0;
    }
    int empty_post = req->body == NULL && strcmp(method, "POST") == 0;
    if (empty_post && t->empty_post_set)
        return rc; /* as the last request: acquire and release in a loop */
    t->empty_post_set = 0;
    if (strcmp(method, "GET") == 0 && req->body == NULL) {
        SETOPT(&rc, t, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        SETOPT(&rc, t, CURLOPT_NOBODY, 1L);
        t->had_custom = 1;
    } else {
        /* POSTFIELDS with an explicit size: Content-Length always sent, 0 when no body. */
        SETOPT(&rc, t, CURLOPT_POST, 1L);
        SETOPT(&rc, t, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
        SETOPT(&rc, t, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        if (strcmp(method, "POST") != 0) {
            SETOPT(&rc, t, CURLOPT_CUSTOMREQUEST, method);
            t->had_custom = 1;
        }
        t->empty_post_set = empty_post && rc == CURLE_OK;
    }
    return rc;
}

/* Header list and timeouts: set only when they differ from the last request's. */
static CURLcode set_changed_options(transport *t, const transport_request *req,
                                    struct curl_slist *headers)
{
    CURLcode rc = CURLE_OK;
    long connect_ms = (long)(req->connect_timeout * 1000), timeout_ms = (long)(req->timeout * 1000);
    if (headers != t->headers_set) {
        SETOPT(&rc, t, CURLOPT_HTTPHEADER, headers);
        t->headers_set = rc == CURLE_OK ? headers : NULL;
    }
    if (connect_ms != t->connect_ms_set) {
        SETOPT(&rc, t, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
        t->connect_ms_set = rc == CURLE_OK ? connect_ms : -1;
    }
    if (timeout_ms != t->timeout_ms_set) {
        SETOPT(&rc, t, CURLOPT_TIMEOUT_MS, timeout_ms);
        t->timeout_ms_set = rc == CURLE_OK ? timeout_ms : -1;
    }
    return rc;
}

static CURLcode set_options(transport *t, const transport_request *req,
                            struct curl_slist *headers)
{
    CURLcode rc = CURLE_OK;
    SETOPT(&rc, t, CURLOPT_URL, req->url);
    CURLcode changed_rc = set_changed_options(t, req, headers);
    if (rc == CURLE_OK)
        rc = changed_rc;
    if (req->username && req->password) {
        SETOPT(&rc, t, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SETOPT(&rc, t, CURLOPT_USERNAME, req->username);
        SETOPT(&rc, t, CURLOPT_PASSWORD, req->password);
        t->had_auth = 1;
    } else if (t->had_auth) {
        SETOPT(&rc, t, CURLOPT_USERNAME, (char *)NULL);
        SETOPT(&rc, t, CURLOPT_PASSWORD, (char *)NULL);
        t->had_auth = 0;
    }
    CURLcode method_rc = set_method(t, req);
    return rc != CURLE_OK ? rc : method_rc;
}

/* Go names the failed call like `Post "URL": reason`. */
static void describe(transport *t, const transport_request *req, transport_response *resp,
                     const char *reason)
{
    const char *m = req->method ? req->method : "GET";
    char verb[16];
    size_t i;
    for (i = 0; m[i] && i < sizeof verb - 1; i++)
        verb[i] = (char)(i == 0 ? m[i] : (m[i] >= 'A' && m[i] <= 'Z' ? m[i] + 32 : m[i]));
    verb[i] = '\0';
    (void)t;
    snprintf(resp->error, sizeof resp->error, "%s \"%s\": %s", verb, req->url, reason);
}

static transport_error_kind classify(transport *t, CURLcode rc, const exchange *x)
{
    if (x->too_large)
        return TRANSPORT_TOO_LARGE;
    if (x->oom || rc == CURLE_OUT_OF_MEMORY || rc == CURLE_FAILED_INIT)
        return TRANSPORT_INIT;
    if (rc == CURLE_COULDNT_CONNECT)
        return TRANSPORT_CONNECT;
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        /* libcurl words a connect-phase timeout "Connection timed out". */
        return strncmp(t->errbuf, "Connection timed out", 20) == 0 ||
               strncmp(t->errbuf, "Failed to connect", 17) == 0
                   ? TRANSPORT_CONNECT : TRANSPORT_TIMEOUT;
    }
    return TRANSPORT_IO;
}

static int finish(transport *t, const transport_request *req, transport_response *resp,
                  CURLcode rc, const exchange *x)
{
    if (rc == CURLE_OK && !x->too_large && !x->oom) {
        long code = 0;
        if (t->curl->easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
            code = 0;
        resp->status = code;
        resp->kind = TRANSPORT_OK;
        if (resp->body == NULL && (resp->body = calloc(1, 1)) == NULL) {
            resp->kind = TRANSPORT_INIT;
            describe(t, req, resp, "out of memory");
            return -1;
        }
        return 0;
    }
    resp->kind = classify(t, rc, x);
    resp->status = 0;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    char reason[CURL_ERROR_SIZE + 64];
    if (resp->kind == TRANSPORT_TOO_LARGE)
        snprintf(reason, sizeof reason, "response body larger than %zu bytes", x->max_body);
    else
        snprintf(reason, sizeof reason, "%s", t->errbuf[0] ? t->errbuf : t->curl->easy_strerror(rc));
    long os_errno = 0;
    if (t->curl->easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno != 0) {
        size_t used = strlen(reason);
        snprintf(reason + used, sizeof reason - used, " (%s)", strerror((int)os_errno));
    }
    describe(t, req, resp, reason);
    return -1;
}

int transport_perform(transport *t, const transport_request *req, transport_response *resp)
{
    memset(resp, 0, sizeof *resp);
    if (t->spare != NULL) { /* an empty body until the first bytes come */
        resp->body = t->spare;
        resp->body_cap = t->spare_cap;
        resp->body[0] = '\0';
        t->spare = NULL;
    }
    exchange *x = &t->x;
    *x = (exchange){ .resp = resp, .max_body = req->max_body ? req->max_body : (size_t)-1 };
    struct curl_slist *headers = headers_for(t, req->content_type);
    if (headers == NULL) {
        resp->kind = TRANSPORT_INIT;
        describe(t, req, resp, "out of memory (or Content-Type too long)");
        return -1;
    }
    t->errbuf[0] = '\0';
    CURLcode rc = set_options(t, req, headers);
    if (rc == CURLE_OK)
        rc = t->curl->easy_perform(t->easy);
    int result = finish(t, req, resp, rc, x);
    /* The handle must not keep pointers into the caller's memory: the body
     * (a Lua string) may be freed before the next request. An empty body
     * is a static "" and may stay. */
    x->resp = NULL;
    if (req->body != NULL) {
        CURLcode ignored = CURLE_OK; /* clearing a pointer cannot fail */
        SETOPT(&ignored, t, CURLOPT_POSTFIELDS, (char *)NULL);
    }
    return result;
}
