/* store_test.c: the store interface: SQLite commit, flush (group
 * commit: durable only once flushed), rollback, delete, lifecycles and
 * reopen; store_open's spec errors. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "server/store.h"
#include "unit.h"

static char err[1024];
static char seen[1024];

static int on_res(void *ctx, const store_rec *r)
{
    size_t n = strlen(seen);
    snprintf(seen + n, sizeof seen - n, "%s/%s/%s/%s/%s/%lld/%d;", r->type, r->name, r->state,
             r->owner, r->userdata, (long long)r->seq, r->has_exp);
    return 0;
}

static int on_drlc(void *ctx, const char *type, const char *json)
{
    size_t n = strlen(seen);
    snprintf(seen + n, sizeof seen - n, "D %s %s;", type, json);
    return 0;
}

static const char *load(store *s)
{
    seen[0] = '\0';
    if (s->ops->load(s, NULL, on_res, on_drlc, err, sizeof err) != 0)
        return err;
    return seen;
}

static void sqlite_store(void)
{
    char path[] = "/tmp/bosk-store-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    store *s = store_sqlite_open(path, err, sizeof err);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    store_rec a = { "t", "a", "free", "", "{}", 5, 0, 0, 1 };
    store_rec b = { "t", "b", "busy", "o", "{\"k\":\"v\"}", 6, 9, 1, 2 };
    CHECK(s->ops->begin(s, err, sizeof err) == 0 && s->ops->put(s, &a, err, sizeof err) == 0);
    s->ops->rollback(s);
    CHECK_STR(load(s), "");
    CHECK(s->ops->begin(s, err, sizeof err) == 0);
    CHECK(s->ops->put(s, &b, err, sizeof err) == 0 && s->ops->put(s, &a, err, sizeof err) == 0);
    CHECK(s->ops->put_drlc(s, "d", "{\"state\":\"free\"}", err, sizeof err) == 0);
    CHECK(s->ops->commit(s, err, sizeof err) == 0);
    CHECK(s->committed == 1 && s->durable == 0);
    CHECK(s->ops->flush(s, err, sizeof err) == 0);
    CHECK(s->durable == 1);
    s->ops->close(s);
    s = store_sqlite_open(path, err, sizeof err);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_STR(load(s), "t/a/free//{}/1/0;t/b/busy/o/{\"k\":\"v\"}/2/1;D d {\"state\":\"free\"};");
    CHECK(s->ops->begin(s, err, sizeof err) == 0 && s->ops->del(s, "a", err, sizeof err) == 0 &&
          s->ops->del_drlc(s, "d", err, sizeof err) == 0 && s->ops->commit(s, err, sizeof err) == 0);
    CHECK(s->ops->flush(s, err, sizeof err) == 0);
    CHECK_STR(load(s), "t/b/busy/o/{\"k\":\"v\"}/2/1;");
    /* committed but not flushed: load reads the store and forgets it */
    CHECK(s->ops->begin(s, err, sizeof err) == 0 && s->ops->del(s, "b", err, sizeof err) == 0 &&
          s->ops->commit(s, err, sizeof err) == 0);
    CHECK_STR(load(s), "t/b/busy/o/{\"k\":\"v\"}/2/1;");
    CHECK(s->ops->flush(s, err, sizeof err) == 0);
    CHECK_STR(load(s), "t/b/busy/o/{\"k\":\"v\"}/2/1;");
    s->ops->close(s);
    unlink(path);
}

static void open_specs(void)
{
    store *s = store_open("memory", err, sizeof err);
    CHECK(s != NULL && strcmp(s->kind, "memory") == 0);
    if (s)
        s->ops->close(s);
    CHECK(store_open("redis", err, sizeof err) == NULL);
    CHECK_STR(err, "invalid --storage redis: want memory or sqlite:PATH");
    CHECK(store_open("sqlite:", err, sizeof err) == NULL);
    CHECK(store_open("sqlite:/nonexistent/dir/x.db", err, sizeof err) == NULL);
    CHECK_STR(err, "cannot open sqlite store /nonexistent/dir/x.db: folder /nonexistent/dir does not "
                   "exist (sqlite: unable to open database file)");
}

/* The folder through a regular file, and (when not root, who may write
 * anywhere) a folder without write permission. */
static void open_reasons(void)
{
    char dir[] = "/tmp/bosk-store-test-XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    snprintf(path, sizeof path, "%s/file/x.db", dir);
    CHECK(store_sqlite_open(path, err, sizeof err) == NULL);
    CHECK(strstr(err, "/file is not a folder") != NULL);
    snprintf(path, sizeof path, "%s/file", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/x.db", dir);
    if (geteuid() == 0) {
        printf("  # skip: the permission case needs a non-root user (tests/server_config_test.lua drops to nobody)\n");
    } else {
        chmod(dir, 0555);
        CHECK(store_sqlite_open(path, err, sizeof err) == NULL);
        CHECK(strstr(err, "cannot write in folder") != NULL && strstr(err, "Permission denied") != NULL);
        chmod(dir, 0755);
    }
    rmdir(dir);
}

static int reject_drlc(void *ctx, const char *type, const char *json)
{
    return -1;
}

/* The load error names the type: it was formatted after sqlite3_finalize
 * had freed the column text (the name came out empty). */
static void load_error_names_type(void)
{
    char path[] = "/tmp/bosk-store-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    store *s = store_sqlite_open(path, err, sizeof err);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK(s->ops->begin(s, err, sizeof err) == 0 &&
          s->ops->put_drlc(s, "dyn-type", "{}", err, sizeof err) == 0 &&
          s->ops->commit(s, err, sizeof err) == 0 && s->ops->flush(s, err, sizeof err) == 0);
    CHECK(s->ops->load(s, NULL, on_res, reject_drlc, err, sizeof err) != 0);
    CHECK(strstr(err, "lifecycle of type dyn-type is not valid JSON") != NULL);
    CHECK(strstr(err, path) != NULL);
    s->ops->close(s);
    unlink(path);
}

int main(void)
{
    RUN(sqlite_store);
    RUN(open_specs);
    RUN(open_reasons);
    RUN(load_error_names_type);
    UNIT_EXIT();
}
