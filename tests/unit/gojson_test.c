/* gojson_test.c: Go-identical JSON strings, %q quoting, times and the
 * user-data merge of /update. */
#include <stdlib.h>
#include "core/gojson.h"
#include "unit.h"

static char *str(void (*fn)(jbuf *, const char *, size_t), const char *s, size_t n)
{
    jbuf b;
    jbuf_init(&b);
    fn(&b, s, n);
    char *out = jbuf_strdup(&b);
    jbuf_free(&b);
    return out;
}

#define CHECK_ENC(fn, in, want) do { char *o_ = str(fn, in, sizeof(in) - 1); \
    CHECK_STR(o_, want); free(o_); } while (0)

static void json_strings(void)
{
    CHECK_ENC(gojson_string, "plain", "\"plain\"");
    CHECK_ENC(gojson_string, "q\"b\\", "\"q\\\"b\\\\\"");
    CHECK_ENC(gojson_string, "\n\r\t\x01\x1f", "\"\\n\\r\\t\\u0001\\u001f\"");
    CHECK_ENC(gojson_string, "<a&b>", "\"\\u003ca\\u0026b\\u003e\"");
    CHECK_ENC(gojson_string, "\xe2\x80\xa8\xe2\x80\xa9", "\"\\u2028\\u2029\"");
    CHECK_ENC(gojson_string, "caf\xc3\xa9 \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
    CHECK_ENC(gojson_string, "a\xffz\xc3", "\"a\\ufffdz\\ufffd\"");
    CHECK_ENC(gojson_string, "\x7f", "\"\x7f\"");
}

static void go_quote(void)
{
    CHECK_ENC(gojson_quote, "t", "\"t\"");
    CHECK_ENC(gojson_quote, "a\"b\\c", "\"a\\\"b\\\\c\"");
    CHECK_ENC(gojson_quote, "\n\t\x01\x7f", "\"\\n\\t\\x01\\x7f\"");
    CHECK_ENC(gojson_quote, "\xff", "\"\\xff\"");
    CHECK_ENC(gojson_quote, "caf\xc3\xa9", "\"caf\xc3\xa9\"");
    CHECK_ENC(gojson_time_quote, "1\xc2\xb5x\"", "\"1\\xc2\\xb5x\\\"\"");
}

static void times(void)
{
    char t[48];
    gojson_format_time(t, sizeof t, 0);
    CHECK_STR(t, "1970-01-01T00:00:00Z");
    gojson_format_time(t, sizeof t, 1136214245);
    CHECK_STR(t, "2006-01-02T15:04:05Z");
}

static void merge(void)
{
    char *m = NULL, err[256];
    CHECK(gojson_merge_userdata("{\"a\":\"1\"}", "", 0, &m, err, sizeof err) == 0 && m == NULL);
    CHECK(gojson_merge_userdata("{\"a\":\"1\"}", " \n", 2, &m, err, sizeof err) == 0 && m == NULL);
    CHECK(gojson_merge_userdata("{\"a\":\"1\"}", "null", 4, &m, err, sizeof err) == 0 && m == NULL);
    const char *body = "{\"z\":\"<\",\"a\":null,\"b\":\"\",\"c\":\"x\"} junk";
    CHECK(gojson_merge_userdata("{\"a\":\"1\",\"b\":\"2\"}", body, strlen(body), &m, err, sizeof err) == 0);
    CHECK_STR(m, "{\"c\":\"x\",\"z\":\"\\u003c\"}");
    free(m);
    CHECK(gojson_merge_userdata("{}", "[1]", 3, &m, err, sizeof err) != 0);
    CHECK_STR(err, "json: cannot unmarshal array into Go value of type common.UserData");
    CHECK(gojson_merge_userdata("{}", "{\"a\":1}", 7, &m, err, sizeof err) != 0);
    CHECK_STR(err, "json: cannot unmarshal number into Go value of type string");
    CHECK(gojson_merge_userdata("{}", "{\"a\":", 5, &m, err, sizeof err) != 0);
    CHECK_STR(err, "unexpected EOF");
    CHECK(gojson_merge_userdata("{}", "x", 1, &m, err, sizeof err) != 0);
    CHECK_STR(err, "invalid character 'x' looking for beginning of value");
}

/* Go's UserData.Update member by member: the last of equal keys wins,
 * "" and null delete; keys come out sorted byte-wise. */
/* A key with invalid UTF-8 names the key Go decodes it to (U+FFFD per
 * bad byte), which the stored text holds as \ufffd: it replaces and
 * deletes that key, and a second merge of the same body changes nothing.
 * (Go writes the valid U+FFFD it decoded as raw bytes.) */
static void merge_invalid_utf8_key(void)
{
    char *m = NULL, *twice = NULL, err[256];
    const char set[] = "{\"k\xff\":\"2\"}";
    CHECK(gojson_merge_userdata("{\"k\\ufffd\":\"1\"}", set, strlen(set), &m, err, sizeof err) == 0);
    CHECK_STR(m, "{\"k\xef\xbf\xbd\":\"2\"}");
    CHECK(m && gojson_merge_userdata(m, set, strlen(set), &twice, err, sizeof err) == 0);
    CHECK_STR(twice, "{\"k\xef\xbf\xbd\":\"2\"}");
    free(m);
    free(twice);
    const char del[] = "{\"k\xff\":\"\"}";
    m = NULL;
    CHECK(gojson_merge_userdata("{\"k\\ufffd\":\"1\",\"x\":\"y\"}", del, strlen(del), &m, err, sizeof err) == 0);
    CHECK_STR(m, "{\"x\":\"y\"}");
    free(m);
}

static void merge_semantics(void)
{
    char *m = NULL, err[256];
    const char *body = "{\"b\":\"1\",\"a\":\"x\",\"b\":\"2\",\"c\":\"3\",\"c\":null,\"d\":\"\",\"d\":\"4\"}";
    CHECK(gojson_merge_userdata("{\"c\":\"old\",\"e\":\"5\"}", body, strlen(body), &m, err, sizeof err) == 0);
    CHECK_STR(m, "{\"a\":\"x\",\"b\":\"2\",\"d\":\"4\",\"e\":\"5\"}");
    free(m);
    /* byte order, not locale: upper case, then lower, then UTF-8 */
    body = "{\"\xc3\xa9\":\"1\",\"a\":\"2\",\"B\":\"3\",\"\":\"4\"}";
    CHECK(gojson_merge_userdata("{}", body, strlen(body), &m, err, sizeof err) == 0);
    CHECK_STR(m, "{\"\":\"4\",\"B\":\"3\",\"a\":\"2\",\"\xc3\xa9\":\"1\"}");
    free(m);
    /* the stored side may be unsorted or hold non-strings: they are dropped */
    body = "{\"a\":\"\"}";
    CHECK(gojson_merge_userdata("{\"z\":\"1\",\"n\":2,\"a\":\"3\",\"m\":\"<\"}", body, strlen(body), &m, err,
                                sizeof err) == 0);
    CHECK_STR(m, "{\"m\":\"\\u003c\",\"z\":\"1\"}");
    free(m);
    CHECK(gojson_merge_userdata("not json", "{\"a\":\"1\"}", 9, &m, err, sizeof err) == 0);
    CHECK_STR(m, "{\"a\":\"1\"}");
    free(m);
    CHECK(gojson_merge_userdata("{\"a\":\"1\"}", "{}", 2, &m, err, sizeof err) == 0);
    CHECK_STR(m, "{\"a\":\"1\"}");
    free(m);
    m = gojson_normalize_userdata("{\"b\":\"1\",\"a\":null,\"c\":\"\",\"b\":\"2\"}", err, sizeof err);
    CHECK_STR(m, "{\"b\":\"2\"}");
    free(m);
}

/* Random merges over a small key alphabet against a direct model. */
static void merge_random(void)
{
    static const char *const keys[] = { "a", "b", "ab", "B", "k1", "k10", "k2", "\xc3\xa9" };
    enum { NK = sizeof keys / sizeof keys[0] };
    srand(11);
    for (int round = 0; round < 500; round++) {
        const char *model[NK] = { 0 };
        jbuf cur, body, want;
        jbuf_init(&cur), jbuf_init(&body), jbuf_init(&want);
        jbuf_addc(&cur, '{');
        for (int k = 0; k < NK; k++)
            if (rand() % 2) {
                model[k] = rand() % 2 ? "old" : "<&>";
                jbuf_printf(&cur, "%s\"%s\":\"%s\"", cur.len > 1 ? "," : "", keys[k], model[k]);
            }
        jbuf_adds(&cur, "}");
        jbuf_addc(&body, '{');
        for (int i = 0, n = rand() % 12; i < n; i++) {
            int k = rand() % NK, v = rand() % 3;
            static const char *const vals[] = { "\"\"", "null", "\"new\"" };
            jbuf_printf(&body, "%s\"%s\":%s", body.len > 1 ? "," : "", keys[k], vals[v]);
            model[k] = v == 2 ? "new" : NULL;
        }
        jbuf_adds(&body, "}");
        /* the indexes of keys[] in byte order */
        static const int order[] = { 3, 0, 2, 1, 4, 5, 6, 7 };
        jbuf_addc(&want, '{');
        for (int i = 0; i < NK; i++) {
            int k = order[i];
            if (model[k] == NULL)
                continue;
            if (want.len > 1)
                jbuf_addc(&want, ',');
            gojson_string(&want, keys[k], strlen(keys[k]));
            jbuf_addc(&want, ':');
            gojson_string(&want, model[k], strlen(model[k]));
        }
        jbuf_addc(&want, '}');
        char *m = NULL, err[256];
        CHECK(gojson_merge_userdata(cur.data, body.data, body.len, &m, err, sizeof err) == 0);
        if (m == NULL || strcmp(m, want.data) != 0) {
            printf("  round %d: %s + %s\n", round, cur.data, body.data);
            CHECK_STR(m, want.data);
            round = 500;
        }
        free(m);
        jbuf_free(&cur), jbuf_free(&body), jbuf_free(&want);
    }
}

int main(void)
{
    RUN(json_strings);
    RUN(go_quote);
    RUN(times);
    RUN(merge);
    RUN(merge_semantics);
    RUN(merge_invalid_utf8_key);
    RUN(merge_random);
    UNIT_EXIT();
}
