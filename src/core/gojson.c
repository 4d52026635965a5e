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

/* The code unit of the \uXXXX escape at s (6 bytes available), or -1. */
static long escaped_unit(const char *s, size_t avail)
{
    if (avail < 6 || s[0] != '\\' || s[1] != 'u')
        return -1;
    long v = 0;
    for (int i = 2; i < 6; i++) {
        int c = (unsigned char)s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
                c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Go's decoder reads a \u escape of a surrogate that is not the first
 * half of a valid pair as U+FFFD; cJSON refuses the whole text. Returns a
 * malloc'd copy of body with those escapes written as \ufffd, or NULL
 * when there are none (or memory ran out: cJSON then refuses as before). */
static char *fix_lone_surrogates(const char *body, size_t len)
{
    char *out = NULL;
    for (size_t i = 0; i + 6 <= len; i++) {
        if (body[i] != '\\')
            continue;
        long u = escaped_unit(body + i, len - i);
        if (u < 0xD800 || u > 0xDFFF) {
            i++;               /* skip the escaped character (\\ or \") */
            continue;
        }
        long next = escaped_unit(body + i + 6, len - i - 6);
        if (u <= 0xDBFF && next >= 0xDC00 && next <= 0xDFFF) {
            i += 11;           /* a valid pair */
            continue;
        }
        if (out == NULL) {
            if ((out = malloc(len)) == NULL)
                return NULL;
            memcpy(out, body, len);
            body = out;
        }
        memcpy(out + i, "\\ufffd", 6);
        i += 5;
    }
    return out;
}

/* Go's Decoder stops right after an object or array but needs a space (or
 * the end) after a string, number, true, false or null. */
static int check_after_value(const cJSON *v, const char *end, const char *stop, char *err,
                             size_t err_len)
{
    if (cJSON_IsObject(v) || cJSON_IsArray(v) || end == NULL || end >= stop ||
        strchr(" \t\r\n", *end))
        return 0;
    if ((unsigned char)*end >= 0x20 && (unsigned char)*end < 0x7f)
        snprintf(err, err_len, "invalid character '%c' after top-level value", *end);
    else
        snprintf(err, err_len, "invalid character '\\x%02x' after top-level value",
                 (unsigned char)*end);
    return -1;
}

/* Parses the first JSON value of body; Go-like message on failure. */
static cJSON *parse_body(const char *body, size_t len, char *err, size_t err_len)
{
    char *fixed = fix_lone_surrogates(body, len);
    if (fixed != NULL)
        body = fixed;
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (v != NULL && check_after_value(v, end, body + len, err, err_len) != 0) {
        cJSON_Delete(v);
        free(fixed);
        return NULL;
    }
    if (v != NULL) {
        free(fixed);
        return v;
    }
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
    free(fixed);
    return NULL;
}

/* ---- the /update merge ----
 *
 * Go's UserData.Update stores each member of the body in turn ("" deletes)
 * and the encoder writes keys sorted. Deleting and adding per member in a
 * cJSON object costs a scan of the object each time, quadratic in the
 * number of keys; sorting both sides by key and merging them costs
 * O(n log n) and gives the same result. */

typedef struct {
    const cJSON *item;
    size_t pos;               /* arrival order: the last of equal keys wins */
} member;

struct gojson_update {
    cJSON *root;
    member *v;                /* sorted by key, one per key */
    size_t n;
};

static int cmp_members(const void *a, const void *b)
{
    const member *x = a, *y = b;
    int c = strcmp(x->item->string, y->item->string);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The object's members sorted by key, keeping the last of equal keys;
 * with strings_only, members that are not strings are skipped. NULL only
 * when out of memory. */
static member *sorted_members(const cJSON *obj, int strings_only, size_t *n)
{
    size_t count = 0;
    for (const cJSON *it = obj->child; it; it = it->next)
        count++;
    member *v = malloc((count ? count : 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    count = 0;
    for (const cJSON *it = obj->child; it; it = it->next)
        if (!strings_only || cJSON_IsString(it)) {
            v[count].item = it;
            v[count].pos = count;
            count++;
        }
    if (count > 1)
        qsort(v, count, sizeof *v, cmp_members);
    size_t w = 0;
    for (size_t i = 0; i < count; i++) {
        if (w > 0 && strcmp(v[w - 1].item->string, v[i].item->string) == 0)
            w--;              /* a later duplicate replaces the earlier one */
        v[w++] = v[i];
    }
    *n = w;
    return v;
}

/* A copy of the n bytes at s with every byte that is not valid UTF-8
 * written as U+FFFD, as Go's decoder reads it, allocated as cJSON
 * allocates (it replaces a key); NULL when out of memory. */
static char *utf8_replaced(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    char *out = cJSON_malloc(3 * n + 1), *w = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (len == 0) {
            memcpy(w, "\xef\xbf\xbd", 3);
            w += 3;
            i++;
        } else {
            memcpy(w, s + i, len);
            w += len;
            i += len;
        }
    }
    *w = '\0';
    return out;
}

static int valid_utf8(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    unsigned cp;
    for (size_t i = 0, len; i < n; i += len)
        if ((len = utf8_decode(s + i, n - i, &cp)) == 0)
            return 0;
    return 1;
}

/* Keys with invalid UTF-8 are read as Go reads them (U+FFFD for each bad
 * byte), so that such a key replaces or deletes the stored key it names:
 * the stored text holds them as \ufffd. -1 when out of memory. */
static int valid_keys(cJSON *obj)
{
    for (cJSON *it = obj->child; it; it = it->next) {
        if (it->string == NULL || valid_utf8(it->string))
            continue;
        char *fixed = utf8_replaced(it->string, strlen(it->string));
        if (fixed == NULL)
            return -1;
        if (!(it->type & cJSON_StringIsConst))
            cJSON_free(it->string);
        it->string = fixed;
        it->type &= ~cJSON_StringIsConst;
    }
    return 0;
}

void gojson_update_free(gojson_update *upd)
{
    if (upd == NULL)
        return;
    cJSON_Delete(upd->root);
    free(upd->v);
    free(upd);
}

int gojson_update_parse(const char *body, size_t body_len, gojson_update **upd, char *err,
                        size_t err_len)
{
    *upd = NULL;
    if (body == NULL || only_space(body, body_len))
        return 0;
    cJSON *root = parse_body(body, body_len, err, err_len);
    if (root == NULL)
        return -1;
    if (cJSON_IsNull(root)) {
        cJSON_Delete(root);
        return 0;
    }
    if (check_object(root, err, err_len) != 0) {
        cJSON_Delete(root);
        return -1;
    }
    gojson_update *u = calloc(1, sizeof *u);
    if (u == NULL || valid_keys(root) != 0 || (u->v = sorted_members(root, 0, &u->n)) == NULL) {
        free(u);
        cJSON_Delete(root);
        snprintf(err, err_len, "out of memory reading user data");
        return -1;
    }
    u->root = root;
    *upd = u;
    return 0;
}

static int has_value(const cJSON *it)
{
    return cJSON_IsString(it) && it->valuestring[0] != '\0';
}

static void add_member(jbuf *b, const cJSON *it)
{
    if (b->len > 1)
        jbuf_addc(b, ',');
    gojson_string(b, it->string, strlen(it->string));
    jbuf_addc(b, ':');
    gojson_string(b, it->valuestring, strlen(it->valuestring));
}

/* Writes the union of two key-sorted member lists, upd's value winning,
 * members without a value left out. */
static void merge_sorted(jbuf *b, const member *cur, size_t n_cur, const member *upd, size_t n_upd)
{
    size_t i = 0, j = 0;
    jbuf_addc(b, '{');
    while (i < n_cur || j < n_upd) {
        int c = i == n_cur ? 1 : j == n_upd ? -1
                : strcmp(cur[i].item->string, upd[j].item->string);
        const cJSON *it = c < 0 ? cur[i].item : upd[j].item;
        i += c <= 0;
        j += c >= 0;
        if (has_value(it))
            add_member(b, it);
    }
    jbuf_addc(b, '}');
}

/* merge_sorted into a malloc'd string (NULL when out of memory). */
static char *encode_merged(const member *cur, size_t n_cur, const member *upd, size_t n_upd)
{
    jbuf b;
    jbuf_init(&b);
    merge_sorted(&b, cur, n_cur, upd, n_upd);
    char *s = jbuf_strdup(&b);
    jbuf_free(&b);
    return s;
}

int gojson_update_apply(const char *current, const gojson_update *upd, char **merged,
                        char *err, size_t err_len)
{
    *merged = NULL;
    if (upd == NULL)
        return 0;
    cJSON *cur = cJSON_Parse(current && *current ? current : "{}");
    if (cur != NULL && !cJSON_IsObject(cur)) {
        cJSON_Delete(cur);
        cur = NULL;
    }
    size_t n_cur = 0;
    member *v = cur ? sorted_members(cur, 1, &n_cur) : NULL;
    if (cur == NULL || v != NULL)
        *merged = encode_merged(v, n_cur, upd->v, upd->n);
    free(v);
    cJSON_Delete(cur);
    if (*merged == NULL) {
        snprintf(err, err_len, "out of memory merging user data");
        return -1;
    }
    return 0;
}

int gojson_merge_userdata(const char *current, const char *body, size_t body_len,
                          char **merged, char *err, size_t err_len)
{
    gojson_update *upd;
    *merged = NULL;
    if (gojson_update_parse(body, body_len, &upd, err, err_len) != 0)
        return -1;
    int rc = gojson_update_apply(current, upd, merged, err, err_len);
    gojson_update_free(upd);
    return rc;
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
    size_t n = 0;
    member *items = sorted_members(v, 1, &n);
    char *s = items ? encode_merged(items, n, NULL, 0) : NULL;
    free(items);
    cJSON_Delete(v);
    if (s == NULL)
        snprintf(err, err_len, "out of memory encoding user data");
    return s;
}
