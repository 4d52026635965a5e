/* path_fuzz.c: the server's path cleaning (clean_path, static in
 * src/server/handlers.c, reached by including that file). Go's ServeMux
 * cleans with path.Clean, keeping a trailing slash: the result starts with
 * '/', has no empty, "." or ".." segment, and cleaning it again changes
 * nothing. */
#include <string.h>
#include "fuzz.h"
#include "server/handlers.c"

static void check_segments(const char *p)
{
    FUZZ_CHECK(p[0] == '/');
    for (const char *s = p + 1; *s; ) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        FUZZ_CHECK(len > 0 || e == NULL);      /* only a trailing slash is empty */
        FUZZ_CHECK(!(len == 1 && s[0] == '.'));
        FUZZ_CHECK(!(len == 2 && s[0] == '.' && s[1] == '.'));
        s += len + (e != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = strndup((const char *)data, size);   /* MHD hands over a C string */
    if (url == NULL)
        return 0;
    char *clean = clean_path(url);
    if (clean != NULL) {
        check_segments(clean);
        FUZZ_CHECK(strlen(clean) <= strlen(url) + 2);
        char *again = clean_path(clean);
        FUZZ_CHECK(again != NULL && strcmp(again, clean) == 0);
        free(again);
    }
    free(clean);
    free(url);
    return 0;
}
