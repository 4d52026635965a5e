/* hold.h: holds (docs/history.md): a resource whose user data has
 * `bosk.hold/until` (RFC 3339) in the future is left alone by /reset, so a
 * failed environment can be kept for inspection. A bosk extension: the
 * key is recorded against any Boskos, honoured only by bosk server. */
#ifndef BOSK_HOLD_H
#define BOSK_HOLD_H

#include <stdint.h>

#define HOLD_UNTIL_KEY "bosk.hold/until"
#define HOLD_REASON_KEY "bosk.hold/reason"

/* 1 when userdata (Go JSON object text) holds the resource at now (unix
 * ns): its bosk.hold/until parses and is later than now. 0 otherwise,
 * a value that does not parse included (it holds nothing). */
int hold_active(const char *userdata, int64_t now_ns);

/* An RFC 3339 time ("2006-01-02T15:04:05Z", fractions and offsets
 * allowed) as unix ns (clamped to int64's range); 0, or -1 when it does
 * not parse. */
int hold_parse_time(const char *s, int64_t *ns);

#endif
