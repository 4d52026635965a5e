/* goprint.h: Go's unicode.IsPrint, which decides what strconv.Quote (and
 * so fmt's %q) prints as it is and what it escapes. */
#ifndef BOSK_GOPRINT_H
#define BOSK_GOPRINT_H

/* 1 when Go prints code point cp unescaped in %q, else 0. */
int goprint_is_print(unsigned cp);

#endif
