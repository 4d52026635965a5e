/* godur_test.c: Go's ParseDuration grammar, errors and String(). */
#include <stdlib.h>
#include "core/godur.h"
#include "unit.h"

static int64_t ok(const char *s)
{
    int64_t ns = -12345;
    char err[256] = "";
    if (godur_parse(s, strlen(s), &ns, err, sizeof err) != 0)
        printf("  unexpected error for %s: %s\n", s, err);
    return ns;
}

static const char *bad(const char *s)
{
    static char err[256];
    int64_t ns;
    err[0] = '\0';
    if (godur_parse(s, strlen(s), &ns, err, sizeof err) == 0)
        return "(no error)";
    return err;
}

static void parse_ok(void)
{
    CHECK(ok("0") == 0);
    CHECK(ok("-0") == 0);
    CHECK(ok("300ms") == 300000000LL);
    CHECK(ok("-1.5h") == -5400000000000LL);
    CHECK(ok("2h45m") == 9900000000000LL);
    CHECK(ok("1us") == 1000 && ok("1\xc2\xb5s") == 1000 && ok("1\xce\xbcs") == 1000);
    CHECK(ok(".5s") == 500000000LL);
    CHECK(ok("1.s") == 1000000000LL);
    CHECK(ok("+10s") == 10000000000LL);
    CHECK(ok("1ns") == 1);
}

static void parse_errors(void)
{
    CHECK_STR(bad(""), "time: invalid duration \"\"");
    CHECK_STR(bad("-"), "time: invalid duration \"-\"");
    CHECK_STR(bad("abc"), "time: invalid duration \"abc\"");
    CHECK_STR(bad("5"), "time: missing unit in duration \"5\"");
    CHECK_STR(bad("1x"), "time: unknown unit \"x\" in duration \"1x\"");
    CHECK_STR(bad("1\xc3\xa9"), "time: unknown unit \"\\xc3\\xa9\" in duration \"1\\xc3\\xa9\"");
    CHECK_STR(bad("."), "time: invalid duration \".\"");
    CHECK_STR(bad("9999999999h"), "time: invalid duration \"9999999999h\"");
}

static void format(void)
{
    char out[64];
    struct { int64_t ns; const char *want; } cases[] = {
        { 0, "0s" }, { 1, "1ns" }, { 1100, "1.1\xc2\xb5s" }, { 2200000, "2.2ms" },
        { 1800000000000LL, "30m0s" }, { 3600000000000LL, "1h0m0s" }, { 30000000000LL, "30s" },
        { 1500000000LL, "1.5s" }, { -90000000000LL, "-1m30s" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        godur_format(cases[i].ns, out, sizeof out);
        CHECK_STR(out, cases[i].want);
    }
}

int main(void)
{
    RUN(parse_ok);
    RUN(parse_errors);
    RUN(format);
    UNIT_EXIT();
}
