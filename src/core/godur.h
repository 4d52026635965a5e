/* godur.h: Go's time.ParseDuration and Duration.String in C, for /reset's
 * `expire` and the config's `lifespan`; error texts are Go's. */
#ifndef BOSK_GODUR_H
#define BOSK_GODUR_H

#include <stddef.h>
#include <stdint.h>

/* Parses s (n bytes) into nanoseconds. 0, or -1 with Go's message in err
 * (`time: invalid duration "x"` and friends). */
int godur_parse(const char *s, size_t n, int64_t *ns, char *err, size_t err_len);

/* Go's Duration.String() ("1h0m0s", "1.5s", "0s") into out (>= 40 bytes). */
void godur_format(int64_t ns, char *out, size_t n);

#endif
