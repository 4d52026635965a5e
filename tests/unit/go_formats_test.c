/* go_formats_test.c: the C side of tests/data/go_formats.txt, the table of
 * Go's answers that tests/client_goformats_test.lua also reads. */
#include <inttypes.h>
#include <stdlib.h>
#include "core/godur.h"
#include "core/gojson.h"
#include "unit.h"

/* Decodes the file's input escapes (\xNN, \\) into out, NUL-terminated;
 * returns the length (the input may itself hold NUL bytes). */
static size_t decode_input(const char *s, char *out)
{
    size_t n = 0;
    while (*s) {
        if (s[0] == '\\' && s[1] == 'x' && s[2] && s[3]) {
            char hex[3] = { s[2], s[3], '\0' };
            out[n++] = (char)strtol(hex, NULL, 16);
            s += 4;
        } else if (s[0] == '\\' && s[1] == '\\') {
            out[n++] = '\\';
            s += 2;
        } else {
            out[n++] = *s++;
        }
    }
    out[n] = '\0';
    return n;
}

static void check_parse(const char *in, size_t n, const char *want, int line)
{
    int64_t ns = 0;
    char err[256] = "", got[300];
    if (godur_parse(in, n, &ns, err, sizeof err) == 0)
        snprintf(got, sizeof got, "%" PRId64, ns);
    else
        snprintf(got, sizeof got, "error: %s", err);
    if (strcmp(got, want) != 0) {
        printf("  line %d: parse got \"%s\", want \"%s\"\n", line, got, want);
        unit_case_failed = 1;
    }
}

static void check_format(const char *in, const char *want, int line)
{
    char got[48];
    godur_format((int64_t)strtoll(in, NULL, 10), got, sizeof got);
    if (strcmp(got, want) != 0) {
        printf("  line %d: format got \"%s\", want \"%s\"\n", line, got, want);
        unit_case_failed = 1;
    }
}

static void check_quote(const char *in, size_t n, const char *want, int line)
{
    jbuf b;
    jbuf_init(&b);
    gojson_quote(&b, in, n);
    if (b.data == NULL || strcmp(b.data, want) != 0) {
        printf("  line %d: quote got %s, want %s\n", line, b.data ? b.data : "(null)", want);
        unit_case_failed = 1;
    }
    jbuf_free(&b);
}

static int cases_run;

static void shared_table(void)
{
    const char *root = getenv("BOSK_ROOT");
    char path[4096], line[1024], input[1024];
    snprintf(path, sizeof path, "%s/tests/data/go_formats.txt", root ? root : ".");
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        printf("  cannot open %s\n", path);
        unit_case_failed = 1;
        return;
    }
    for (int lineno = 1; fgets(line, sizeof line, f) != NULL; lineno++) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (tab2 == NULL) {
            printf("  line %d: not three TAB-separated fields\n", lineno);
            unit_case_failed = 1;
            continue;
        }
        *tab1 = *tab2 = '\0';
        size_t n = decode_input(tab1 + 1, input);
        const char *want = tab2 + 1;
        cases_run++;
        if (strcmp(line, "parse") == 0)
            check_parse(input, n, want, lineno);
        else if (strcmp(line, "format") == 0)
            check_format(input, want, lineno);
        else if (strcmp(line, "quote") == 0)
            check_quote(input, n, want, lineno);
        else {
            printf("  line %d: unknown kind \"%s\"\n", lineno, line);
            unit_case_failed = 1;
        }
    }
    fclose(f);
    CHECK(cases_run >= 70);
}

int main(void)
{
    RUN(shared_table);
    UNIT_EXIT();
}
