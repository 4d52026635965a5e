/* gojson.c: Go-compatible JSON text output (see gojson.h). Parsing is
 * cJSON's job; this file only decides the exact bytes written. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "core/gojson.h"
#include "core/goprint.h"

static const char hexdig[] = "0123456789abcdef";

void jbuf_init(jbuf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

void jbuf_free(jbuf *b)
{
    free(b->data);
    jbuf_init(b);
}

static int reserve(jbuf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void jbuf_add(jbuf *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void jbuf_adds(jbuf *b, const char *s) { jbuf_add(b, s, strlen(s)); }
void jbuf_addc(jbuf *b, char c) { jbuf_add(b, &c, 1); }

void jbuf_printf(jbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *jbuf_strdup(const jbuf *b)
{
    if (b->oom)
        return NULL;
    char *s = malloc(b->len + 1);
    if (s == NULL)
        return NULL;
    if (b->len)
        memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    return s;
}

/* Decodes one UTF-8 sequence at s (n bytes left). Returns its length and
 * the code point in *cp, or 0 when the bytes are not valid UTF-8 (Go then
 * treats one byte as U+FFFD). */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xc2 && c <= 0xdf) { len = 2; *cp = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; *cp = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; *cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return len;
}

static void add_u4(jbuf *b, unsigned v)
{
    char e[6] = { '\\', 'u', hexdig[(v >> 12) & 15], hexdig[(v >> 8) & 15],
                  hexdig[(v >> 4) & 15], hexdig[v & 15] };
    jbuf_add(b, e, 6);
}

static void string_ascii(jbuf *b, unsigned char c)
{
    switch (c) {
    case '"': jbuf_add(b, "\\\"", 2); return;
    case '\\': jbuf_add(b, "\\\\", 2); return;
    case '\n': jbuf_add(b, "\\n", 2); return;
    case '\r': jbuf_add(b, "\\r", 2); return;
    case '\t': jbuf_add(b, "\\t", 2); return;
    case '<': case '>': case '&': add_u4(b, c); return;
    default:
        if (c < 0x20)
            add_u4(b, c);
        else
            jbuf_addc(b, (char)c);
    }
}

void gojson_string(jbuf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    jbuf_addc(b, '"');
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            string_ascii(b, s[i++]);
            continue;
        }
        unsigned cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (len == 0) {
            jbuf_add(b, "\\ufffd", 6);
            i++;
        } else if (cp == 0x2028 || cp == 0x2029) {
            add_u4(b, cp);
            i += len;
        } else {
            jbuf_add(b, (const char *)s + i, len);
            i += len;
        }
    }
    jbuf_addc(b, '"');
}

static void add_x2(jbuf *b, unsigned char c)
{
    char e[4] = { '\\', 'x', hexdig[c >> 4], hexdig[c & 15] };
    jbuf_add(b, e, 4);
}

static void quote_ascii(jbuf *b, unsigned char c)
{
    static const char esc[] = "\a\b\f\n\r\t\v";
    static const char let[] = "abfnrtv";
    const char *p = c ? strchr(esc, c) : NULL;
    if (c == '"' || c == '\\') {
        jbuf_addc(b, '\\');
        jbuf_addc(b, (char)c);
    } else if (p != NULL) {
        jbuf_addc(b, '\\');
        jbuf_addc(b, let[p - esc]);
    } else if (c < 0x20 || c == 0x7f) {
        add_x2(b, c);
    } else {
        jbuf_addc(b, (char)c);
    }
}

void gojson_quote(jbuf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    jbuf_addc(b, '"');
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            quote_ascii(b, s[i++]);
            continue;
        }
        unsigned cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (len == 0) {
            add_x2(b, s[i++]);
        } else if (goprint_is_print(cp)) {
            jbuf_add(b, (const char *)s + i, len);
            i += len;
        } else if (cp < 0x10000) {
            add_u4(b, cp);
            i += len;
        } else {
            jbuf_printf(b, "\\U%08x", cp);
            i += len;
        }
    }
    jbuf_addc(b, '"');
}

void gojson_time_quote(jbuf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    jbuf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 0x80 || s[i] < 0x20) {
            add_x2(b, s[i]);
        } else {
            if (s[i] == '"' || s[i] == '\\')
                jbuf_addc(b, '\\');
            jbuf_addc(b, (char)s[i]);
        }
    }
    jbuf_addc(b, '"');
}

void gojson_format_time(char *out, size_t n, int64_t unix_seconds)
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, n, "0001-01-01T00:00:00Z");
        return;
    }
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void gojson_time(jbuf *b, int64_t unix_seconds)
{
    char t[48];
    gojson_format_time(t, sizeof t, unix_seconds);
    jbuf_addc(b, '"');
    jbuf_adds(b, t);
    jbuf_addc(b, '"');
}

/* ---- user data ---- */

static int cmp_items(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

/* Writes the object's string members with sorted keys; skips empty ones. */
static char *encode_userdata(const cJSON *obj)
{
    size_t n = 0;
    for (const cJSON *it = obj->child; it; it = it->next)
        n++;
    const cJSON **items = calloc(n ? n : 1, sizeof *items);
    if (items == NULL)
        return NULL;
    n = 0;
    for (const cJSON *it = obj->child; it; it = it->next)
        if (cJSON_IsString(it) && it->valuestring[0] != '\0')
            items[n++] = it;
    if (n > 1)
        qsort(items, n, sizeof *items, cmp_items);
    jbuf b;
    jbuf_init(&b);
    jbuf_addc(&b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            jbuf_addc(&b, ',');
        gojson_string(&b, items[i]->string, strlen(items[i]->string));
        jbuf_addc(&b, ':');
        gojson_string(&b, items[i]->valuestring, strlen(items[i]->valuestring));
    }
    jbuf_addc(&b, '}');
    free(items);
    char *s = jbuf_strdup(&b);
    jbuf_free(&b);
    return s;
}

static const char *json_kind(const cJSON *v)
{
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsBool(v)) return "bool";
    if (cJSON_IsObject(v)) return "object";
    return "string";
}

/* Checks a decoded body: an object whose members are strings or null. */
static int check_object(const cJSON *v, char *err, size_t err_len)
{
    if (!cJSON_IsObject(v)) {
        snprintf(err, err_len, "json: cannot unmarshal %s into Go value of type common.UserData",
                 json_kind(v));
        return -1;
    }
    for (const cJSON *it = v->child; it; it = it->next) {
        if (!cJSON_IsString(it) && !cJSON_IsNull(it)) {
            snprintf(err, err_len, "json: cannot unmarshal %s into Go value of type string",
                     json_kind(it));
            return -1;
        }
    }
    return 0;
}

static int only_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return 0;
    return 1;
}

/* Parses the first JSON value of body; Go-like message on failure. */
static cJSON *parse_body(const char *body, size_t len, char *err, size_t err_len)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (v != NULL)
        return v;
    end = cJSON_GetErrorPtr();
    size_t used = len;
    while (used > 0 && strchr(" \t\r\n", body[used - 1]))
        used--;
    /* cJSON points at (or just before) the byte it choked on: at the last
     * byte means the input ended early, as Go reports it */
    size_t first = 0;
    while (first < used && strchr(" \t\r\n", body[first]))
        first++;
    int starts_value = first < used && strchr("{[\"tfn-0123456789", body[first]) != NULL;
    if (end == NULL || end < body || ((size_t)(end - body) + 1 >= used && starts_value))
        snprintf(err, err_len, "unexpected EOF");
    else if ((unsigned char)*end >= 0x20 && (unsigned char)*end < 0x7f)
        snprintf(err, err_len, "invalid character '%c' looking for beginning of value", *end);
    else
        snprintf(err, err_len, "invalid character '\\x%02x' looking for beginning of value",
                 (unsigned char)*end);
    return NULL;
}

static void apply_member(cJSON *cur, const cJSON *it)
{
    cJSON_DeleteItemFromObjectCaseSensitive(cur, it->string);
    if (cJSON_IsString(it) && it->valuestring[0] != '\0')
        cJSON_AddItemToObject(cur, it->string, cJSON_CreateString(it->valuestring));
}

int gojson_merge_userdata(const char *current, const char *body, size_t body_len,
                          char **merged, char *err, size_t err_len)
{
    *merged = NULL;
    if (body == NULL || only_space(body, body_len))
        return 0;
    cJSON *upd = parse_body(body, body_len, err, err_len);
    if (upd == NULL)
        return -1;
    if (cJSON_IsNull(upd)) {
        cJSON_Delete(upd);
        return 0;
    }
    if (check_object(upd, err, err_len) != 0) {
        cJSON_Delete(upd);
        return -1;
    }
    cJSON *cur = cJSON_Parse(current && *current ? current : "{}");
    if (cur == NULL || !cJSON_IsObject(cur)) {
        cJSON_Delete(cur);
        cur = cJSON_CreateObject();
    }
    for (const cJSON *it = upd->child; it; it = it->next)
        apply_member(cur, it);
    *merged = encode_userdata(cur);
    cJSON_Delete(cur);
    cJSON_Delete(upd);
    if (*merged == NULL) {
        snprintf(err, err_len, "out of memory merging user data");
        return -1;
    }
    return 0;
}

char *gojson_normalize_userdata(const char *text, char *err, size_t err_len)
{
    cJSON *v = cJSON_Parse(text ? text : "{}");
    if (v == NULL) {
        snprintf(err, err_len, "user data is not valid JSON");
        return NULL;
    }
    if (check_object(v, err, err_len) != 0) {
        cJSON_Delete(v);
        return NULL;
    }
    char *s = encode_userdata(v);
    cJSON_Delete(v);
    if (s == NULL)
        snprintf(err, err_len, "out of memory encoding user data");
    return s;
}
