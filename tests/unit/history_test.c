/* history_test.c: the keys a change touched (the sorted fast path and the
 * parsing fallback agree), the hold time parser, and the in-memory
 * index's caps, staging and expiry. */
#include <stdlib.h>
#include "unit.h"
#include "server/history.h"
#include "server/hold.h"

static char got[8192];
static uint32_t got_total;

static const char *keys(const char *before, const char *after)
{
    jbuf b;
    jbuf_init(&b);
    if (history_keys_changed(&b, &got_total, before, after) != 0)
        snprintf(got, sizeof got, "(error)");
    else
        snprintf(got, sizeof got, "%s", b.data ? b.data : "");
    jbuf_free(&b);
    return got;
}

static void keys_changed(void)
{
    CHECK_STR(keys("{}", "{}"), "[]");
    CHECK_STR(keys("{}", "{\"a\":\"1\"}"), "[\"a\"]");
    CHECK_STR(keys("{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}", "{\"a\":\"1\",\"b\":\"x\",\"d\":\"4\"}"),
              "[\"b\",\"c\",\"d\"]");
    CHECK(got_total == 3);
    CHECK_STR(keys("{\"a\":\"1\"}", "{}"), "[\"a\"]");
    /* a key with an escape and unsorted keys take the parsing path */
    CHECK_STR(keys("{\"a\\u003cb\":\"1\"}", "{\"a\\u003cb\":\"2\",\"z\":\"\"}"), "[\"a\\u003cb\",\"z\"]");
    CHECK_STR(keys("{\"b\":\"1\",\"a\":\"1\"}", "{\"a\":\"2\",\"b\":\"1\"}"), "[\"a\"]");
    /* escaped values compare as stored */
    CHECK_STR(keys("{\"a\":\"x\\\"y\"}", "{\"a\":\"x\\\"y\"}"), "[]");
    CHECK_STR(keys("{\"a\":\"x\\\"y\"}", "{\"a\":\"x\\\"z\"}"), "[\"a\"]");
    /* not objects: none named */
    CHECK_STR(keys("null", "{\"a\":\"1\"}"), "[]");
    /* at most HISTORY_MAX_KEYS named, all counted */
    char big[8192] = "{";
    for (int i = 0; i < 150; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s\"k%03d\":\"v\"", i ? "," : "", i);
    strcat(big, "}");
    keys("{}", big);
    CHECK(got_total == 150);
    CHECK(strstr(got, "\"k099\"]") != NULL && strstr(got, "k100") == NULL);
}

static void hold_times(void)
{
    int64_t ns;
    CHECK(hold_parse_time("1970-01-01T00:00:10Z", &ns) == 0 && ns == 10000000000LL);
    CHECK(hold_parse_time("1970-01-01T01:00:10+01:00", &ns) == 0 && ns == 10000000000LL);
    CHECK(hold_parse_time("1970-01-01T00:00:10.5Z", &ns) == 0 && ns == 10500000000LL);
    CHECK(hold_parse_time("1970-01-01 00:00:10Z", &ns) != 0);
    CHECK(hold_parse_time("tomorrow", &ns) != 0);
    CHECK(hold_active("{\"bosk.hold/until\":\"2999-01-01T00:00:00Z\"}", 0) == 1);
    CHECK(hold_active("{\"bosk.hold/until\":\"1999-01-01T00:00:00Z\"}", 1000000000000000000LL) == 0);
    CHECK(hold_active("{\"bosk.hold/until\":\"soon\"}", 0) == 0);
    CHECK(hold_active("{}", 0) == 0);
}

static int count_cb(void *ctx, const hist_event *e)
{
    (*(int *)ctx)++;
    return 0;
}

static int events_of(history_index *h, const char *name)
{
    int n = 0;
    CHECK(history_index_get(h, name, 0, &n, count_cb) == n);
    return n;
}

static void put(history_index *h, const char *name, int64_t t, const char *from, const char *to)
{
    hist_event e = { name, t, "update", from, to, "", "", "[]", 0 };
    CHECK(history_index_stage(h, &e) == 0);
}

static void index_caps(void)
{
    history_limits lim = { 1500, 100 };
    history_index *h = history_index_new(&lim);
    put(h, "a", 1, "free", "busy");
    history_index_rollback(h);
    CHECK(events_of(h, "a") == 0);
    for (int i = 0; i < 1100; i++)
        put(h, "a", 10 + i, "free", "busy");
    history_index_commit(h);
    CHECK(events_of(h, "a") == HISTORY_PER_RESOURCE);
    for (int i = 0; i < 600; i++)
        put(h, "b", 2000 + i, "free", "busy");
    history_index_commit(h);
    CHECK(events_of(h, "b") == 600 && events_of(h, "a") == 900);
    CHECK(history_index_events(h) == 1500);
    /* deleted: kept for keep_deleted_ns, then dropped */
    put(h, "b", 3000, "busy", "");
    history_index_commit(h);
    history_index_expire(h, 3050);
    CHECK(events_of(h, "b") == 601 && events_of(h, "a") == 899);
    history_index_expire(h, 3100);
    CHECK(events_of(h, "b") == 0 && events_of(h, "a") == 899);
    history_index_free(h);
}

int main(void)
{
    RUN(keys_changed);
    RUN(hold_times);
    RUN(index_caps);
    UNIT_EXIT();
}
