/* merge_fuzz.c: the /update user-data merge (gojson_merge_userdata in
 * src/core/gojson.c) as two successive updates: the input is a first body,
 * a NUL byte, then a second body (no NUL: one body over "{}"). The first
 * merge into "{}" makes the current user data, as the server only ever
 * holds what a merge wrote. A merge that succeeds yields an object of
 * strings, and merging the same body again changes nothing more. Compared
 * in normal form (Go's encoding of what decodes): as Go's encoder, the
 * merge writes invalid UTF-8 as \ufffd, which decodes to a valid U+FFFD
 * that is then written as is. */
#include <string.h>
#include "fuzz.h"
#include "core/gojson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    char *current = NULL, first_err[512];
    if (nul != NULL)
        gojson_merge_userdata("{}", text, (size_t)(nul - text), &current, first_err,
                              sizeof first_err);
    if (current == NULL)
        current = strdup("{}");
    const char *body = nul ? nul + 1 : text;
    size_t body_len = nul ? size - (size_t)(nul + 1 - text) : size;
    char err[512] = "", *merged = NULL, *twice = NULL, *normal = NULL, *normal_twice = NULL;
    if (current == NULL)
        return 0;
    if (gojson_merge_userdata(current, body, body_len, &merged, err, sizeof err) != 0) {
        FUZZ_CHECK(merged == NULL && err[0] != '\0');
    } else if (merged != NULL) {
        normal = gojson_normalize_userdata(merged, err, sizeof err);
        FUZZ_CHECK(normal != NULL);
        /* Merging the same body again changes nothing; keys with invalid
         * UTF-8 included (tests/fuzz/crashes/merge-invalid-utf8-key). */
        FUZZ_CHECK(gojson_merge_userdata(merged, body, body_len, &twice, err, sizeof err) == 0);
        FUZZ_CHECK(twice != NULL);
        normal_twice = gojson_normalize_userdata(twice, err, sizeof err);
        FUZZ_CHECK(normal_twice != NULL && strcmp(normal_twice, normal) == 0);
    }
    free(normal_twice);
    free(normal);
    free(twice);
    free(merged);
    free(current);
    return 0;
}
