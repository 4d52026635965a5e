/* gojson.h: output byte-identical to Go's encoding/json and fmt for the
 * few shapes the server sends (docs/protocol.md §1): a growable byte buffer,
 * JSON strings with Go's HTML-safe escaping, Go's %q quoting, and RFC 3339
 * UTC times. Also the user-data merge used by /update. */
#ifndef BOSK_GOJSON_H
#define BOSK_GOJSON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A growable buffer; on allocation failure it sets oom and drops writes. */
typedef struct {
    char *data;
    size_t len, cap;
    int oom;
} jbuf;

void jbuf_init(jbuf *b);
void jbuf_free(jbuf *b);
void jbuf_add(jbuf *b, const char *s, size_t n);
void jbuf_adds(jbuf *b, const char *s);
void jbuf_addc(jbuf *b, char c);
void jbuf_printf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A NUL-terminated copy of the contents (malloc'd), or NULL. */
char *jbuf_strdup(const jbuf *b);

/* A JSON string literal, escaped as Go's encoder escapes it. */
void gojson_string(jbuf *b, const char *s, size_t n);
/* A Go %q literal (strconv.Quote). */
void gojson_quote(jbuf *b, const char *s, size_t n);
/* Go time's quote() as used in duration errors: non-ASCII and control
 * bytes as \xNN. */
void gojson_time_quote(jbuf *b, const char *s, size_t n);
/* A quoted RFC 3339 UTC time with whole seconds: "2006-01-02T15:04:05Z". */
void gojson_time(jbuf *b, int64_t unix_seconds);
/* The same without quotes into out (at least 32 bytes). */
void gojson_format_time(char *out, size_t n, int64_t unix_seconds);

/* An /update body, parsed and checked: its members sorted by key. */
typedef struct gojson_update gojson_update;

/* Parses an /update body (an object of strings or nulls; linear in its
 * size plus a sort). 0 with *upd set (NULL when the body changes nothing:
 * empty, whitespace or `null`), or -1 with Go's decoder-like message. */
int gojson_update_parse(const char *body, size_t body_len, gojson_update **upd, char *err,
                        size_t err_len);
/* Merges upd into the user data `current` (Go JSON of an object of
 * strings) as Go's UserData.Update does: "" or null deletes a key. Sets
 * *merged to a malloc'd JSON text with sorted keys (NULL when upd is
 * NULL) and returns 0, or -1 with err. O(n log n) in the keys. */
int gojson_update_apply(const char *current, const gojson_update *upd, char **merged,
                        char *err, size_t err_len);
void gojson_update_free(gojson_update *upd);

/* Both steps at once (for tests and fuzzing). */
int gojson_merge_userdata(const char *current, const char *body, size_t body_len,
                          char **merged, char *err, size_t err_len);

/* Checks that text is a JSON object of strings and re-encodes it as Go
 * would (sorted keys); malloc'd result or NULL with err. */
char *gojson_normalize_userdata(const char *text, char *err, size_t err_len);

#endif
