/* transport.h: one HTTP exchange at a time over a reusable connection.
 *
 * A transport owns one libcurl easy handle, so consecutive requests to the
 * same server reuse one TCP connection (keep-alive). libcurl itself is
 * dlopen'ed on the first transport_new (see dl_curl.c), so programs that
 * never talk HTTP never load it. A transport is not thread-safe: one
 * thread uses it at a time (the janitor keeps one per worker thread).
 * Nothing here retries: retry policy belongs to the callers (lua/boskos.lua
 * and the janitor supervisor). */
#ifndef BOSK_TRANSPORT_H
#define BOSK_TRANSPORT_H

#include <stddef.h>

typedef struct transport transport;

typedef struct {
    const char *method;        /* "GET" or "POST" */
    const char *url;           /* full URL, query included */
    const char *body;          /* NULL: no body (POST sends Content-Length: 0) */
    size_t body_len;
    const char *content_type;  /* NULL: no Content-Type header */
    const char *username;      /* NULL: no basic auth */
    const char *password;
    double connect_timeout;    /* seconds; 0 = libcurl's default */
    double timeout;            /* whole request, seconds; 0 = none */
    size_t max_body;           /* larger responses fail with TRANSPORT_TOO_LARGE */
} transport_request;

typedef enum {
    TRANSPORT_OK = 0,
    TRANSPORT_CONNECT,    /* refused, reset or timed out while connecting: dialer may retry */
    TRANSPORT_TIMEOUT,    /* the whole-request timeout passed */
    TRANSPORT_IO,         /* the connection broke mid-exchange, or a bad response */
    TRANSPORT_TOO_LARGE,  /* response body over max_body */
    TRANSPORT_INIT        /* libcurl missing or out of memory */
} transport_error_kind;

typedef struct {
    long status;               /* HTTP status; 0 on a transport error */
    char status_line[128];     /* "404 Not Found" (code and reason, as Go prints it) */
    char *body;                /* malloc'd, NUL-terminated; NULL on error */
    size_t body_len;
    size_t body_cap;           /* allocated size of body */
    transport_error_kind kind; /* TRANSPORT_OK when an HTTP status arrived */
    char error[256];           /* human-readable, names the URL, on error */
} transport_response;

/* Returns NULL and fills err when libcurl cannot be loaded or initialized. */
transport *transport_new(char *err, size_t err_len);
/* 0 when a status arrived (any status), -1 with resp->kind/error otherwise.
 * resp must be released with transport_response_free in both cases. */
int transport_perform(transport *t, const transport_request *req, transport_response *resp);
void transport_response_free(transport_response *resp);
/* As transport_response_free, but the body's buffer may be kept by t for
 * its next response (saves a malloc and a free per request). */
void transport_recycle(transport *t, transport_response *resp);
void transport_free(transport *t);

#endif
