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

int main(void)
{
    RUN(json_strings);
    RUN(go_quote);
    RUN(times);
    RUN(merge);
    UNIT_EXIT();
}
