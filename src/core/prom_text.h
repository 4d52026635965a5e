/* prom_text.h: the two pieces of the Prometheus text exposition format
 * that every bosk exporter (the server's /metrics, the janitor's
 * --metrics-listen) must write the same way: label values and numbers.
 * One implementation, so that the server and the janitor cannot disagree. */
#ifndef BOSK_PROM_TEXT_H
#define BOSK_PROM_TEXT_H

#include <stddef.h>
#include "core/gojson.h"

/* Appends s[0..n) as a label value, without the surrounding quotes:
 * backslash, double quote and line feed escaped as the format requires;
 * each run of bytes that is not valid UTF-8 replaced by U+FFFD (a
 * Prometheus server rejects the whole scrape otherwise). With max_bytes >
 * 0 the value is cut, at a character boundary, to at most max_bytes input
 * bytes. */
void prom_label_value(jbuf *b, const char *s, size_t n, size_t max_bytes);

/* A number as Prometheus' Go client writes it (bucket bounds, sums,
 * gauges): the shortest text that reads back as the same double, laid
 * out as Go's strconv 'g' format with precision -1 does (exponent form
 * when the decimal exponent is below -4 or at least 6: 0.1, 1200,
 * 1e+06), and "+Inf", "-Inf", "NaN". out must hold 32 bytes. */
void prom_format_float(char *out, size_t out_len, double v);

#endif
