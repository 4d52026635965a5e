/* goprint.c: Go's unicode.IsPrint from a table of Unicode ranges (see
 * goprint.h). The table is generated from the Unicode version of the Go
 * release the server copies (scripts/gen_goprint.py), because the server's
 * "resource type %q does not exist" must match Go's byte for byte: the
 * client compares it to tell "no such type" from "none free". */
#include <stddef.h>
#include "core/goprint.h"

static const struct { unsigned lo, hi; } printable[] = {
#include "core/goprint_ranges.inc"
};

int goprint_is_print(unsigned cp)
{
    if (cp < 0x80)
        return cp >= 0x20 && cp < 0x7f;
    size_t lo = 0, hi = sizeof printable / sizeof printable[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < printable[mid].lo)
            hi = mid;
        else if (cp > printable[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}
