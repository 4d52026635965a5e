/* store_test.c: the store interface: SQLite commit, flush (group
 * commit: durable only once flushed), rollback, delete, lifecycles and
 * reopen; store_open's spec errors. */
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

static int count_res(void *ctx, const store_rec *r)
{
    size_t *n = ctx;
    *n += strcmp(r->userdata, "{}") != 0 || strcmp(r->name, "small") == 0;
    return 0;
}

#define BIG_RECS 300

/* What the child process wrote before it ended without closing the store
 * (as kill -9 would end it): a commit of 300 resources with 1 KiB of user
 * data each (a WAL write of more than 128 KiB, which the default VFS takes
 * in parts), then a one-row commit. */
static void flush_then_exit(const char *path)
{
    store *s = store_sqlite_open(path, err, sizeof err);
    if (s == NULL)
        _exit(2);
    char userdata[1100] = "{\"k\":\"", name[32];
    memset(userdata + 6, 'x', 1024);
    strcpy(userdata + 6 + 1024, "\"}");
    if (s->ops->begin(s, err, sizeof err) != 0)
        _exit(3);
    for (int i = 0; i < BIG_RECS; i++) {
        snprintf(name, sizeof name, "big-%d", i);
        store_rec r = { "t", name, "free", "", userdata, 5, 0, 0, (uint64_t)i + 1 };
        if (s->ops->put(s, &r, err, sizeof err) != 0)
            _exit(4);
    }
    store_rec small = { "t", "small", "busy", "o", "{}", 6, 0, 0, BIG_RECS + 1 };
    if (s->ops->commit(s, err, sizeof err) != 0 || s->ops->flush(s, err, sizeof err) != 0)
        _exit(5);
    if (s->ops->begin(s, err, sizeof err) != 0 || s->ops->put(s, &small, err, sizeof err) != 0 ||
        s->ops->commit(s, err, sizeof err) != 0 || s->ops->flush(s, err, sizeof err) != 0)
        _exit(6);
    _exit(0);
}

/* A flushed transaction is in the file when flush returns, however large:
 * the WAL VFS (store_sqlite_wal.c) holds frames back only until the
 * commit's last one. */
static void flushed_survives_exit(void)
{
    char path[] = "/tmp/bosk-store-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0)
        flush_then_exit(path);
    int status = -1;
    CHECK(child > 0 && waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    store *s = store_sqlite_open(path, err, sizeof err);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    size_t found = 0;
    CHECK(s->ops->load(s, &found, count_res, on_drlc, err, sizeof err) == 0);
    CHECK(found == BIG_RECS + 1);
    s->ops->close(s);
    char wal[64];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    unlink(path);
}

int main(void)
{
    RUN(sqlite_store);
    RUN(open_specs);
    RUN(open_reasons);
    RUN(load_error_names_type);
    RUN(flushed_survives_exit);
    UNIT_EXIT();
}
