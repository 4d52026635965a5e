/* url_fuzz.c: the server's reading of a request target as Go's net/url
 * reads it (http_url_parse in src/server/http_url.c: the path, then the
 * query as url.ParseQuery splits it). Built only where that file exists
 * (tests/fuzz/fuzz.mk). Invariants: a parse fills every field it promises
 * and never more than HTTP_URL_MAX_PARAMS pairs; a parsed absolute path,
 * escaped as the server escapes a redirect's Location and given the same
 * query, parses back to the same path and pairs. */
#include <string.h>
#include "fuzz.h"
#include "server/http_url.h"

static void check_parsed(const http_url *u)
{
    FUZZ_CHECK(u->path != NULL && u->raw_query != NULL);
    FUZZ_CHECK(u->n_pairs <= HTTP_URL_MAX_PARAMS);
    for (size_t i = 0; i < u->n_pairs; i++) {
        FUZZ_CHECK(u->pairs[i].key != NULL && u->pairs[i].value != NULL);
        FUZZ_CHECK(http_url_get(u, u->pairs[i].key) != NULL);
    }
}

/* Escapes u's path and re-parses it with the same raw query. */
static void check_round_trip(const http_url *u)
{
    jbuf target;
    jbuf_init(&target);
    http_url_escape_path(&target, u->path);
    if (u->raw_query[0] != '\0') {
        jbuf_addc(&target, '?');
        jbuf_adds(&target, u->raw_query);
    }
    FUZZ_CHECK(!target.oom && target.data != NULL);
    http_url again;
    char err[256] = "";
    FUZZ_CHECK(http_url_parse(target.data, &again, err, sizeof err) == HTTP_URL_OK);
    FUZZ_CHECK(strcmp(again.path, u->path) == 0);
    FUZZ_CHECK(again.n_pairs == u->n_pairs);
    for (size_t i = 0; i < u->n_pairs; i++) {
        FUZZ_CHECK(strcmp(again.pairs[i].key, u->pairs[i].key) == 0);
        FUZZ_CHECK(strcmp(again.pairs[i].value, u->pairs[i].value) == 0);
    }
    http_url_free(&again);
    jbuf_free(&target);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = strndup((const char *)data, size);   /* the target is a C string */
    if (raw == NULL)
        return 0;
    http_url u;
    char err[256] = "";
    http_url_status st = http_url_parse(raw, &u, err, sizeof err);
    if (st == HTTP_URL_OK) {
        check_parsed(&u);
        if (u.path[0] == '/')
            check_round_trip(&u);
    } else {
        FUZZ_CHECK(err[0] != '\0' || st == HTTP_URL_NO_MEMORY);
    }
    http_url_free(&u);
    free(raw);
    return 0;
}
