/* godur_fuzz.c: Go durations (src/core/godur.c). Whatever parses must
 * format as Go's Duration.String and parse back to the same nanoseconds;
 * whatever fails must say "time: ..." as Go does. */
#include <string.h>
#include "fuzz.h"
#include "core/godur.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t ns = 0, again = 0;
    char err[512] = "", text[64];
    if (godur_parse((const char *)data, size, &ns, err, sizeof err) != 0) {
        FUZZ_CHECK(strncmp(err, "time: ", 6) == 0);
        return 0;
    }
    godur_format(ns, text, sizeof text);
    FUZZ_CHECK(godur_parse(text, strlen(text), &again, err, sizeof err) == 0);
    FUZZ_CHECK(again == ns);
    return 0;
}
