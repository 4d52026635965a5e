/* ranch_test.c: the ranch without HTTP: scan order, request-id ranks,
 * static sync, and the SQLite store round trip. */
#include <stdlib.h>
#include <unistd.h>
#include "server/ranch.h"
#include "server/server_queue.h"
#include "unit.h"

static char err[4096];

static ranch *make(const char *yaml, store *st)
{
    ranch *r = ranch_new(st ? st : store_memory_open(), 30000000000LL, err, sizeof err);
    config *c = config_parse(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    if (r == NULL || c == NULL || ranch_load(r, err, sizeof err) != 0 ||
        ranch_sync(r, c, err, sizeof err) != 0) {
        printf("  setup: %s\n", err);
        return r;
    }
    return r;
}

/* Acquire's resource name (static buffer), or the error text. */
static const char *acq(ranch *r, const char *owner, const char *rid, ranch_code *rc)
{
    static char name[256];
    jbuf out;
    jbuf_init(&out);
    double waited;
    *rc = ranch_acquire(r, "t", "free", "busy", owner, rid, &out, &waited);
    const char *p = out.data ? strstr(out.data, "\"name\":\"") : NULL;
    if (*rc == RANCH_OK && p)
        snprintf(name, sizeof name, "%.*s", (int)strcspn(p + 8, "\""), p + 8);
    else
        snprintf(name, sizeof name, "%s", out.data ? out.data : "");
    jbuf_free(&out);
    return name;
}

static ranch_code rel(ranch *r, const char *name, const char *owner)
{
    jbuf out;
    jbuf_init(&out);
    ranch_code rc = ranch_release(r, name, "free", owner, &out);
    jbuf_free(&out);
    return rc;
}

/* POST /update's path: parse the body, then the ranch call. */
static ranch_code update(ranch *r, const char *name, const char *owner, const char *body)
{
    gojson_update *u = NULL;
    if (gojson_update_parse(body, strlen(body), &u, err, sizeof err) != 0)
        return RANCH_BAD_REQUEST;
    jbuf out;
    jbuf_init(&out);
    ranch_code rc = ranch_update(r, name, owner, "busy", u, &out);
    snprintf(err, sizeof err, "%s", out.data ? out.data : "");
    jbuf_free(&out);
    gojson_update_free(u);
    return rc;
}

static void scan_order(void)
{
    ranch *r = make("resources:\n- type: t\n  names: [a, b, c]\n", NULL);
    ranch_code rc;
    CHECK_STR(acq(r, "o", "", &rc), "a");
    CHECK_STR(acq(r, "o", "", &rc), "b");
    CHECK(rel(r, "a", "o") == RANCH_OK);
    CHECK(rel(r, "a", "o") == RANCH_OWNER_MISMATCH);
    CHECK(rel(r, "zz", "o") == RANCH_NOT_FOUND);
    CHECK_STR(acq(r, "o", "", &rc), "c");
    CHECK_STR(acq(r, "o", "", &rc), "a");
    CHECK_STR(acq(r, "o", "", &rc), "no available resource t, try again later.");
    CHECK(rc == RANCH_NOT_FOUND);
    ranch_free(r);
}

static void request_ranks(void)
{
    ranch *r = make("resources:\n- type: t\n  names: [a, b]\n", NULL);
    ranch_code rc;
    CHECK_STR(acq(r, "x", "", &rc), "a");
    CHECK_STR(acq(r, "x", "", &rc), "b");
    acq(r, "p", "id1", &rc);
    CHECK(rc == RANCH_NOT_FOUND);
    acq(r, "q", "id2", &rc);
    CHECK(rc == RANCH_NOT_FOUND);
    CHECK(rel(r, "a", "x") == RANCH_OK);
    acq(r, "q", "id2", &rc);
    CHECK(rc == RANCH_NOT_FOUND);            /* rank 2, one free */
    CHECK(rel(r, "b", "x") == RANCH_OK);
    CHECK_STR(acq(r, "q", "id2", &rc), "b"); /* rank 2 of two free: the second */
    CHECK_STR(acq(r, "p", "id1", &rc), "a");
    ranch_free(r);
}

/* Unique request ids past QUEUE_MAX_IDS are not kept: they rank behind
 * every queued id, as requests without one. */
static void queue_bound(void)
{
    ranch *r = make("resources:\n- type: t\n  names: [a]\n", NULL);
    ranch_code rc;
    char rid[64];
    CHECK_STR(acq(r, "x", "", &rc), "a");
    for (int i = 0; i < QUEUE_MAX_IDS + 5000; i++) {
        snprintf(rid, sizeof rid, "id-%d", i);
        acq(r, "p", rid, &rc);
        CHECK(rc == RANCH_NOT_FOUND);
        if (rc != RANCH_NOT_FOUND)
            break;
    }
    CHECK(ranch_queued_ids(r) == QUEUE_MAX_IDS);
    CHECK(rel(r, "a", "x") == RANCH_OK);
    acq(r, "q", "id-late", &rc);
    CHECK(rc == RANCH_NOT_FOUND);            /* not queued, and not first */
    CHECK_STR(acq(r, "p", "id-0", &rc), "a"); /* the first queued id is served */
    CHECK(ranch_queued_ids(r) == QUEUE_MAX_IDS - 1);
    acq(r, "q", "id-late", &rc);             /* one place free: queued now */
    CHECK(ranch_queued_ids(r) == QUEUE_MAX_IDS);
    ranch_free(r);
}

static void static_sync(void)
{
    ranch *r = make("resources:\n- type: t\n  names: [a, b]\n", NULL);
    ranch_code rc;
    CHECK_STR(acq(r, "o", "", &rc), "a");
    const char *yaml = "resources:\n- type: t\n  names: [c]\n";
    config *c = config_parse(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    CHECK(c != NULL && ranch_sync(r, c, err, sizeof err) == 0);
    CHECK(ranch_count(r) == 2);              /* b deleted, a owned, c added */
    CHECK(rel(r, "a", "o") == RANCH_OK);
    CHECK(ranch_take_sync_wanted(r) == 1);
    CHECK(ranch_sync(r, NULL, err, sizeof err) == 0);
    CHECK(ranch_count(r) == 1);
    ranch_free(r);
}

static void sqlite_round_trip(void)
{
    char path[] = "/tmp/bosk-ranch-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    const char *yaml = "resources:\n- type: t\n  names: [a, b, c]\n";
    ranch *r = make(yaml, store_sqlite_open(path, err, sizeof err));
    ranch_code rc;
    CHECK_STR(acq(r, "o", "", &rc), "a");
    CHECK(update(r, "a", "o", "{\"k\":\"v\"}") == RANCH_OK);
    CHECK(rel(r, "b", "") == RANCH_OK);      /* b goes to the tail */
    ranch_free(r);
    r = make(yaml, store_sqlite_open(path, err, sizeof err));
    CHECK(ranch_count(r) == 3);
    jbuf out;
    jbuf_init(&out);
    CHECK_STR(acq(r, "o", "", &rc), "c");    /* order survived: c, then b */
    CHECK_STR(acq(r, "o", "", &rc), "b");
    CHECK(ranch_list(r, "t", "busy", "o", &out) == RANCH_OK);
    CHECK(strstr(out.data, "\"name\":\"a\",\"state\":\"busy\",\"owner\":\"o\"") != NULL);
    CHECK(strstr(out.data, "\"userdata\":{\"k\":\"v\"}") != NULL);
    jbuf_free(&out);
    ranch_free(r);
    unlink(path);
    char wal[64];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", path);
    unlink(wal);
}

int main(void)
{
    RUN(scan_order);
    RUN(request_ranks);
    RUN(queue_bound);
    RUN(static_sync);
    RUN(sqlite_round_trip);
    UNIT_EXIT();
}
