/* godur.c: Go duration syntax (see godur.h). The grammar: optional sign,
 * then `0` alone or one or more ⟨decimal⟩⟨unit⟩ with units ns us µs μs ms
 * s m h. Overflow past int64 nanoseconds is an invalid duration. */
#include <stdio.h>
#include <string.h>
#include "core/godur.h"
#include "core/gojson.h"

static const struct { const char *name; uint64_t ns; } units[] = {
    { "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "\xce\xbcs", 1000 },
    { "ms", 1000000 }, { "s", 1000000000ULL }, { "m", 60000000000ULL },
    { "h", 3600000000000ULL },
};

static int fail(char *err, size_t err_len, const char *what, const char *unit,
                size_t unit_len, const char *s, size_t n)
{
    jbuf b;
    jbuf_init(&b);
    jbuf_adds(&b, "time: ");
    jbuf_adds(&b, what);
    if (unit != NULL) {
        jbuf_addc(&b, ' ');
        gojson_time_quote(&b, unit, unit_len);
        jbuf_adds(&b, " in duration");
    }
    jbuf_addc(&b, ' ');
    gojson_time_quote(&b, s, n);
    snprintf(err, err_len, "%s", b.data ? b.data : "time: invalid duration");
    jbuf_free(&b);
    return -1;
}

/* Leading decimal integer; returns digits consumed, -1 on overflow. */
static int leading_int(const char *s, size_t n, size_t *pos, uint64_t *v)
{
    size_t start = *pos;
    *v = 0;
    for (; *pos < n && s[*pos] >= '0' && s[*pos] <= '9'; (*pos)++) {
        if (*v > (UINT64_C(1) << 63) / 10)
            return -1;
        *v = *v * 10 + (uint64_t)(s[*pos] - '0');
        if (*v > (UINT64_C(1) << 63))
            return -1;
    }
    return (int)(*pos - start);
}

/* Fraction digits: value and scale, ignoring digits past precision. */
static void leading_fraction(const char *s, size_t n, size_t *pos, uint64_t *f, double *scale)
{
    int overflow = 0;
    *f = 0;
    *scale = 1;
    for (; *pos < n && s[*pos] >= '0' && s[*pos] <= '9'; (*pos)++) {
        if (overflow)
            continue;
        if (*f > ((UINT64_C(1) << 63) - 1) / 10) {
            overflow = 1;
            continue;
        }
        uint64_t y = *f * 10 + (uint64_t)(s[*pos] - '0');
        if (y > (UINT64_C(1) << 63)) {
            overflow = 1;
            continue;
        }
        *f = y;
        *scale *= 10;
    }
}

static uint64_t unit_ns(const char *u, size_t len)
{
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strlen(units[i].name) == len && memcmp(units[i].name, u, len) == 0)
            return units[i].ns;
    return 0;
}

/* One ⟨decimal⟩⟨unit⟩ term at *pos, added into *total. */
static int parse_term(const char *s, size_t n, size_t *pos, uint64_t *total,
                      char *err, size_t err_len)
{
    if (!(s[*pos] == '.' || (s[*pos] >= '0' && s[*pos] <= '9')))
        return fail(err, err_len, "invalid duration", NULL, 0, s, n);
    uint64_t v, f = 0;
    double scale = 1;
    int pl = leading_int(s, n, pos, &v);
    if (pl < 0)
        return fail(err, err_len, "invalid duration", NULL, 0, s, n);
    int post = 0;
    if (*pos < n && s[*pos] == '.') {
        (*pos)++;
        size_t before = *pos;
        leading_fraction(s, n, pos, &f, &scale);
        post = *pos != before;
    }
    if (pl == 0 && !post)
        return fail(err, err_len, "invalid duration", NULL, 0, s, n);
    size_t ustart = *pos;
    while (*pos < n && s[*pos] != '.' && !(s[*pos] >= '0' && s[*pos] <= '9'))
        (*pos)++;
    if (*pos == ustart)
        return fail(err, err_len, "missing unit in duration", NULL, 0, s, n);
    uint64_t unit = unit_ns(s + ustart, *pos - ustart);
    if (unit == 0)
        return fail(err, err_len, "unknown unit", s + ustart, *pos - ustart, s, n);
    if (v > (UINT64_C(1) << 63) / unit)
        return fail(err, err_len, "invalid duration", NULL, 0, s, n);
    v *= unit;
    if (f > 0) {
        v += (uint64_t)((double)f * ((double)unit / scale));
        if (v > (UINT64_C(1) << 63))
            return fail(err, err_len, "invalid duration", NULL, 0, s, n);
    }
    *total += v;
    if (*total > (UINT64_C(1) << 63))
        return fail(err, err_len, "invalid duration", NULL, 0, s, n);
    return 0;
}

int godur_parse(const char *s, size_t n, int64_t *ns, char *err, size_t err_len)
{
    size_t pos = 0;
    int neg = 0;
    uint64_t total = 0;
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        pos++;
    }
    if (n - pos == 1 && s[pos] == '0') {
        *ns = 0;
        return 0;
    }
    if (pos == n)
        return fail(err, err_len, "invalid duration", NULL, 0, s, n);
    while (pos < n)
        if (parse_term(s, n, &pos, &total, err, err_len) != 0)
            return -1;
    if (neg) {
        *ns = total == (UINT64_C(1) << 63) ? INT64_MIN : -(int64_t)total;
        return 0;
    }
    if (total > (uint64_t)INT64_MAX)
        return fail(err, err_len, "invalid duration", NULL, 0, s, n);
    *ns = (int64_t)total;
    return 0;
}

/* Writes v/10^prec with trailing zeros (and the dot) dropped. */
static size_t fmt_frac(char *buf, size_t w, uint64_t *v, int prec)
{
    int print = 0;
    for (int i = 0; i < prec; i++) {
        unsigned digit = (unsigned)(*v % 10);
        print = print || digit != 0;
        if (print)
            buf[--w] = (char)('0' + digit);
        *v /= 10;
    }
    if (print)
        buf[--w] = '.';
    return w;
}

static size_t fmt_int(char *buf, size_t w, uint64_t v)
{
    if (v == 0)
        buf[--w] = '0';
    while (v > 0) {
        buf[--w] = (char)('0' + v % 10);
        v /= 10;
    }
    return w;
}

void godur_format(int64_t d, char *out, size_t n)
{
    char buf[40];
    size_t w = sizeof buf;
    uint64_t u = d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d;
    if (u < 1000000000ULL) {
        int prec = 0;
        const char *unit = "ns";
        if (u == 0) { snprintf(out, n, "0s"); return; }
        if (u < 1000) { prec = 0; unit = "ns"; }
        else if (u < 1000000) { prec = 3; unit = "\xc2\xb5s"; }
        else { prec = 6; unit = "ms"; }
        size_t ul = strlen(unit);
        w -= ul;
        memcpy(buf + w, unit, ul);
        w = fmt_frac(buf, w, &u, prec);
        w = fmt_int(buf, w, u);
    } else {
        buf[--w] = 's';
        w = fmt_frac(buf, w, &u, 9);
        w = fmt_int(buf, w, u % 60);
        u /= 60;
        if (u > 0) {
            buf[--w] = 'm';
            w = fmt_int(buf, w, u % 60);
            u /= 60;
            if (u > 0) {
                buf[--w] = 'h';
                w = fmt_int(buf, w, u);
            }
        }
    }
    if (d < 0)
        buf[--w] = '-';
    snprintf(out, n, "%.*s", (int)(sizeof buf - w), buf + w);
}
