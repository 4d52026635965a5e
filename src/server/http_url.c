/* http_url.c: request targets read as Go's net/url reads them (see
 * http_url.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/http_url.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string (plus_is_space: the query
 * form). NULL when an escape is not %XX (*bad set) or memory ran out.
 * *has_nul tells whether %00 was decoded. */
static char *unescape(const char *s, size_t n, int plus_is_space, int *bad, int *has_nul)
{
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                *bad = 1;
                return NULL;
            }
            out[w] = (char)(hi * 16 + lo);
            if (out[w] == '\0')
                *has_nul = 1;
            w++;
            i += 2;
        } else {
            out[w++] = plus_is_space && s[i] == '+' ? ' ' : s[i];
        }
    }
    out[w] = '\0';
    return out;
}

/* Go's ParseRequestURI refuses control bytes anywhere in the target. */
static int has_control_byte(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* "scheme://authority" at the start of raw (the absolute form a proxy
 * sends): the offset of the path after it, else 0. */
static size_t absolute_form_prefix(const char *raw)
{
    size_t i = 0;
    if (!((raw[0] >= 'a' && raw[0] <= 'z') || (raw[0] >= 'A' && raw[0] <= 'Z')))
        return 0;
    while (raw[i] && (strchr("+-.", raw[i]) || (raw[i] >= '0' && raw[i] <= '9') ||
                      (raw[i] >= 'a' && raw[i] <= 'z') || (raw[i] >= 'A' && raw[i] <= 'Z')))
        i++;
    if (strncmp(raw + i, "://", 3) != 0)
        return 0;
    i += 3;
    while (raw[i] && raw[i] != '/' && raw[i] != '?')
        i++;
    return i;
}

static size_t count_params(const char *q)
{
    size_t n = 0;
    for (const char *s = q; *s;) {
        const char *amp = strchr(s, '&');
        size_t len = amp ? (size_t)(amp - s) : strlen(s);
        n += len > 0;
        s += len + (amp != NULL);
    }
    return n;
}

/* Adds one "key=value" piece as url.ParseQuery does: a piece with ';' or
 * a bad escape is dropped; %00 is refused (-1 with err). */
static int add_pair(http_url *u, const char *piece, size_t len, char *err, size_t err_len)
{
    if (memchr(piece, ';', len))
        return 0;
    const char *eq = memchr(piece, '=', len);
    size_t klen = eq ? (size_t)(eq - piece) : len;
    int bad = 0, knul = 0, vnul = 0;
    char *key = unescape(piece, klen, 1, &bad, &knul);
    char *value = key ? unescape(eq ? eq + 1 : "", eq ? len - klen - 1 : 0, 1, &bad, &vnul) : NULL;
    if (key == NULL || value == NULL) {
        free(key);
        free(value);
        if (bad)
            return 0;
        snprintf(err, err_len, "out of memory");
        return -2;
    }
    if (knul || vnul) {
        if (knul)
            snprintf(err, err_len, "invalid query: a parameter name contains %%00");
        else
            snprintf(err, err_len, "invalid query: the value of %.200s contains %%00", key);
        free(key);
        free(value);
        return -1;
    }
    u->pairs[u->n_pairs++] = (http_url_pair){ key, value };
    return 0;
}

static http_url_status parse_query(http_url *u, char *err, size_t err_len)
{
    size_t n = count_params(u->raw_query);
    if (n > HTTP_URL_MAX_PARAMS) {
        snprintf(err, err_len, "invalid query: %zu parameters, at most %d are accepted", n,
                 HTTP_URL_MAX_PARAMS);
        return HTTP_URL_REFUSED;
    }
    if (n == 0)
        return HTTP_URL_OK;
    if ((u->pairs = calloc(n, sizeof *u->pairs)) == NULL)
        return HTTP_URL_NO_MEMORY;
    for (const char *s = u->raw_query; *s;) {
        const char *amp = strchr(s, '&');
        size_t len = amp ? (size_t)(amp - s) : strlen(s);
        if (len > 0) {
            int rc = add_pair(u, s, len, err, err_len);
            if (rc != 0)
                return rc == -1 ? HTTP_URL_REFUSED : HTTP_URL_NO_MEMORY;
        }
        s += len + (amp != NULL);
    }
    return HTTP_URL_OK;
}

http_url_status http_url_parse(const char *raw, http_url *u, char *err, size_t err_len)
{
    memset(u, 0, sizeof *u);
    if (has_control_byte(raw)) {
        snprintf(err, err_len, "invalid control character in URL");
        return HTTP_URL_BAD_TARGET;
    }
    size_t start = absolute_form_prefix(raw);
    if (start == 0 && raw[0] != '/') {
        snprintf(err, err_len, "invalid URI for request");
        return HTTP_URL_BAD_TARGET;
    }
    const char *path = raw + start, *q = strchr(path, '?');
    size_t path_len = q ? (size_t)(q - path) : strlen(path);
    if ((u->raw_query = strdup(q ? q + 1 : "")) == NULL)
        return HTTP_URL_NO_MEMORY;
    int bad = 0, nul = 0;
    if ((u->path = unescape(path, path_len, 0, &bad, &nul)) == NULL) {
        if (!bad)
            return HTTP_URL_NO_MEMORY;
        snprintf(err, err_len, "invalid URL escape in the path");
        return HTTP_URL_BAD_TARGET;
    }
    if (nul) {
        snprintf(err, err_len, "the path contains %%00");
        return HTTP_URL_REFUSED;
    }
    return parse_query(u, err, err_len);
}

void http_url_free(http_url *u)
{
    for (size_t i = 0; i < u->n_pairs; i++) {
        free(u->pairs[i].key);
        free(u->pairs[i].value);
    }
    free(u->pairs);
    free(u->path);
    free(u->raw_query);
    memset(u, 0, sizeof *u);
}

const char *http_url_get(const http_url *u, const char *key)
{
    for (size_t i = 0; i < u->n_pairs; i++)
        if (strcmp(u->pairs[i].key, key) == 0)
            return u->pairs[i].value;
    return "";
}

void http_url_escape_path(jbuf *b, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *s = (const unsigned char *)path; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            (*s && strchr("-_.~$&+,/:;=@", *s))) {
            jbuf_addc(b, (char)*s);
        } else {
            char e[3] = { '%', hex[*s >> 4], hex[*s & 15] };
            jbuf_add(b, e, 3);
        }
    }
}
