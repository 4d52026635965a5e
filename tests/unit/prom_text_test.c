/* prom_text_test.c: label values and numbers as the Prometheus text
 * format and its Go client write them. */
#include "unit.h"
#include "core/prom_text.h"

static char *label_of(const char *s, size_t n, size_t max)
{
    static char out[256];
    jbuf b;
    jbuf_init(&b);
    prom_label_value(&b, s, n, max);
    snprintf(out, sizeof out, "%s", b.data ? b.data : "");
    jbuf_free(&b);
    return out;
}

static void label_values_are_escaped(void)
{
    CHECK_STR(label_of("a\\b\"c\nd", 7, 0), "a\\\\b\\\"c\\nd");
    CHECK_STR(label_of("tab\tok", 6, 0), "tab\tok");
    CHECK_STR(label_of("caf\xC3\xA9", 5, 0), "caf\xC3\xA9");
}

static void invalid_utf8_becomes_one_replacement_per_run(void)
{
    CHECK_STR(label_of("a\xFF\xFE" "b", 4, 0), "a\xEF\xBF\xBD" "b");
    CHECK_STR(label_of("\xC0\xAF", 2, 0), "\xEF\xBF\xBD");          /* overlong '/' */
    CHECK_STR(label_of("\xED\xA0\x80", 3, 0), "\xEF\xBF\xBD");      /* surrogate */
    CHECK_STR(label_of("x\xE2\x82", 3, 0), "x\xEF\xBF\xBD");        /* cut short */
}

static void cut_at_a_character_boundary(void)
{
    CHECK_STR(label_of("abcdef", 6, 3), "abc");
    CHECK_STR(label_of("ab\xC3\xA9", 4, 3), "ab");
}

static char *num(double v)
{
    static char out[32];
    prom_format_float(out, sizeof out, v);
    return out;
}

static void numbers_as_the_go_client(void)
{
    CHECK_STR(num(0.1), "0.1");
    CHECK_STR(num(0.005), "0.005");
    CHECK_STR(num(0.0078125), "0.0078125");
    CHECK_STR(num(1), "1");
    CHECK_STR(num(0), "0");
    CHECK_STR(num(-0.0), "0");
    CHECK_STR(num(1200), "1200");
    CHECK_STR(num(123456), "123456");
    CHECK_STR(num(1e6), "1e+06");
    CHECK_STR(num(1234567), "1.234567e+06");
    CHECK_STR(num(0.0001), "0.0001");
    CHECK_STR(num(0.00001), "1e-05");
    CHECK_STR(num(0.1 + 0.2), "0.30000000000000004");
    CHECK_STR(num(-2.5), "-2.5");
    CHECK_STR(num(1.0 / 0.0), "+Inf");
    CHECK_STR(num(-1.0 / 0.0), "-Inf");
    CHECK_STR(num(0.0 / 0.0), "NaN");
}

int main(void)
{
    RUN(label_values_are_escaped);
    RUN(invalid_utf8_becomes_one_replacement_per_run);
    RUN(cut_at_a_character_boundary);
    RUN(numbers_as_the_go_client);
    UNIT_EXIT();
}
