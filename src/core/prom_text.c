/* prom_text.c: Prometheus text-format label values and numbers (see
 * prom_text.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/prom_text.h"

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when
 * the bytes there are not one (overlong forms, surrogates and code points
 * above U+10FFFF are invalid, as in Go's utf8 package). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) len = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) len = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) len = 4;
    else return 0;
    if (s[0] == 0xE0) lo = 0xA0;
    else if (s[0] == 0xED) hi = 0x9F;
    else if (s[0] == 0xF0) lo = 0x90;
    else if (s[0] == 0xF4) hi = 0x8F;
    if (len > n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

void prom_label_value(jbuf *b, const char *s, size_t n, size_t max_bytes)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t limit = max_bytes > 0 && max_bytes < n ? max_bytes : n;
    int in_bad_run = 0;
    for (size_t i = 0; i < limit;) {
        size_t len = utf8_len(u + i, n - i);
        if (len == 0) {
            if (!in_bad_run)
                jbuf_adds(b, "\xEF\xBF\xBD");
            in_bad_run = 1;
            i++;
            continue;
        }
        if (i + len > limit)
            break;                 /* never cut a character in half */
        in_bad_run = 0;
        if (u[i] == '\\')
            jbuf_adds(b, "\\\\");
        else if (u[i] == '"')
            jbuf_adds(b, "\\\"");
        else if (u[i] == '\n')
            jbuf_adds(b, "\\n");
        else
            jbuf_add(b, s + i, len);
        i += len;
    }
}

void prom_format_float(char *out, size_t out_len, double v)
{
    if (isnan(v)) {
        snprintf(out, out_len, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, out_len, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0) {
        snprintf(out, out_len, "0");          /* -0 too, as Go's client */
        return;
    }
    /* the fewest significant digits that read back as v */
    char buf[40];
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(buf, sizeof buf, "%.*e", digits - 1, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    snprintf(buf, sizeof buf, "%.*e", digits - 1, v);
    int exp10 = atoi(strchr(buf, 'e') + 1);
    if (exp10 < -4 || exp10 >= 6)
        snprintf(out, out_len, "%s", buf);    /* C's %e has Go's e+06 layout */
    else
        snprintf(out, out_len, "%.*f", digits - 1 - exp10 > 0 ? digits - 1 - exp10 : 0, v);
}
