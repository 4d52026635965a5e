/* http_url.h: the request target of an HTTP request, read as Go's
 * net/http reads it (url.ParseRequestURI, then url.ParseQuery), from the
 * raw bytes the client sent; libmicrohttpd's own parsing is not used
 * because it differs from Go's (it truncates values at %00, keeps invalid
 * escapes literally, and stops answering past a few hundred query
 * parameters). */
#ifndef BOSK_HTTP_URL_H
#define BOSK_HTTP_URL_H

#include <stddef.h>
#include "core/gojson.h"

/* More query parameters than this: 400 (a request of bosk's API has at
 * most six). */
#define HTTP_URL_MAX_PARAMS 256

typedef struct {
    char *key, *value;
} http_url_pair;

typedef struct {
    char *path;                /* percent-decoded, as Go's URL.Path */
    char *raw_query;           /* after the first '?', verbatim; "" if none */
    http_url_pair *pairs;      /* in order; pairs with a bad escape dropped */
    size_t n_pairs;
} http_url;

typedef enum {
    HTTP_URL_OK,
    HTTP_URL_BAD_TARGET,       /* Go answers "400 Bad Request" and closes */
    HTTP_URL_REFUSED,          /* bosk's own rule (%00, too many parameters) */
    HTTP_URL_NO_MEMORY,
} http_url_status;

/* Parses raw (the request target). On anything but HTTP_URL_OK, err says
 * what was wrong; u needs http_url_free in every case. */
http_url_status http_url_parse(const char *raw, http_url *u, char *err, size_t err_len);
void http_url_free(http_url *u);

/* The first value of key, or "" (as Go's Query().Get). */
const char *http_url_get(const http_url *u, const char *key);

/* Appends path escaped as Go's URL.EscapedPath does for a path without a
 * raw form: everything but letters, digits, -_.~$&+,/:;=@ as %XX. */
void http_url_escape_path(jbuf *b, const char *path);

#endif
