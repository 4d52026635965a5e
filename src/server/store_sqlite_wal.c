/* store_sqlite_wal.c: the "bosk-wal" VFS (see store_sqlite_wal.h).
 *
 * SQLite appends a commit to the WAL as one frame per page, each frame
 * written as two pwrite calls (a 24-byte header, then the page). A flush
 * of the committer dirties 10-20 pages, so 20-40 system calls, each
 * costly on a virtual machine. This VFS sits over the default one and, for
 * WAL files only, gathers writes that continue one another in a buffer;
 * the buffer goes to the file in one write when the commit frame's page
 * arrives (the frame whose header names the database size, which SQLite
 * writes last), or before anything else touches the file (a read, a sync,
 * a truncate, a write elsewhere, a lock, close).
 *
 * Why this keeps the promise: SQLite marks a transaction committed in its
 * WAL index only after its frames were written, and the commit frame's
 * write returns the result of the real write of every frame of the
 * transaction; a failure there fails the commit as before. Durability is
 * unchanged: when COMMIT returns, every frame is in the operating system,
 * as with the default VFS. Other files (the database, its journal) pass
 * straight through. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "server/store_sqlite_wal.h"

#define WAL_HEADER 32          /* the WAL file's own header */
#define FRAME_HEADER 24        /* each frame's header, before its page */
#define MAX_BATCH (4u << 20)   /* larger writes go through as they come */
/* The default VFS's xWrite fails from 128 KiB on (it masks the length
 * with 0x1ffff; SQLite itself never writes more than one 64 KiB page) */
#define WRITE_MAX (96u * 1024)

typedef struct {
    sqlite3_file base;         /* our methods */
    sqlite3_file *real;        /* the default VFS's file, right after us */
    int is_wal;
    int commit_frame;          /* the last write was a commit frame's header */
    unsigned char *buf;        /* writes held back, from file offset off */
    size_t len, cap;
    sqlite3_int64 off;
} wal_file;

static sqlite3_vfs *real_vfs;
static const sqlite3_io_methods wal_methods;

static int wal_flush_file(wal_file *w)
{
    size_t len = w->len;
    w->len = 0;                /* a failed write is SQLite's to handle, once */
    for (size_t done = 0; done < len;) {
        size_t part = len - done < WRITE_MAX ? len - done : WRITE_MAX;
        int rc = w->real->pMethods->xWrite(w->real, w->buf + done, (int)part,
                                           w->off + (sqlite3_int64)done);
        if (rc != SQLITE_OK)
            return rc;
        done += part;
    }
    return SQLITE_OK;
}

/* A frame header's bytes 4-7: the database size after a commit, 0 for the
 * other frames of a transaction. */
static int is_commit_header(const unsigned char *h)
{
    return (h[4] | h[5] | h[6] | h[7]) != 0;
}

static int hold(wal_file *w, const void *data, size_t amt, sqlite3_int64 off)
{
    if (w->len + amt > w->cap) {
        size_t cap = w->cap ? w->cap : 64 * 1024;
        while (cap < w->len + amt)
            cap *= 2;
        unsigned char *grown = realloc(w->buf, cap);
        if (grown == NULL)
            return -1;
        w->buf = grown;
        w->cap = cap;
    }
    if (w->len == 0)
        w->off = off;
    memcpy(w->buf + w->len, data, amt);
    w->len += amt;
    return 0;
}

static int x_write(sqlite3_file *f, const void *data, int amt, sqlite3_int64 off)
{
    wal_file *w = (wal_file *)f;
    if (!w->is_wal)
        return w->real->pMethods->xWrite(w->real, data, amt, off);
    int ends_commit = w->commit_frame;
    w->commit_frame = amt == FRAME_HEADER && off >= WAL_HEADER && is_commit_header(data);
    int rc = SQLITE_OK;
    if (w->len > 0 && (off != w->off + (sqlite3_int64)w->len || w->len + (size_t)amt > MAX_BATCH))
        rc = wal_flush_file(w);
    if (rc != SQLITE_OK)
        return rc;
    if ((size_t)amt > MAX_BATCH || hold(w, data, (size_t)amt, off) != 0)
        return w->real->pMethods->xWrite(w->real, data, amt, off); /* as it comes */
    return ends_commit ? wal_flush_file(w) : SQLITE_OK;
}

static int x_close(sqlite3_file *f)
{
    wal_file *w = (wal_file *)f;
    int rc = wal_flush_file(w);
    int rc_close = w->real->pMethods->xClose(w->real);
    free(w->buf);
    w->buf = NULL;
    return rc != SQLITE_OK ? rc : rc_close;
}

/* The methods that look at or change the file let the held writes reach
 * it first, so that the file is always what SQLite believes it wrote. */
static int x_read(sqlite3_file *f, void *data, int amt, sqlite3_int64 off)
{
    wal_file *w = (wal_file *)f;
    int rc = wal_flush_file(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xRead(w->real, data, amt, off);
}

static int x_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    wal_file *w = (wal_file *)f;
    int rc = wal_flush_file(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xTruncate(w->real, size);
}

static int x_sync(sqlite3_file *f, int flags)
{
    wal_file *w = (wal_file *)f;
    int rc = wal_flush_file(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xSync(w->real, flags);
}

static int x_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    wal_file *w = (wal_file *)f;
    int rc = wal_flush_file(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xFileSize(w->real, size);
}

static int x_lock(sqlite3_file *f, int level)
{
    wal_file *w = (wal_file *)f;
    int rc = wal_flush_file(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xLock(w->real, level);
}

static int x_unlock(sqlite3_file *f, int level)
{
    wal_file *w = (wal_file *)f;
    int rc = wal_flush_file(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xUnlock(w->real, level);
}

static int x_check_reserved_lock(sqlite3_file *f, int *out)
{
    wal_file *w = (wal_file *)f;
    return w->real->pMethods->xCheckReservedLock(w->real, out);
}

static int x_file_control(sqlite3_file *f, int op, void *arg)
{
    wal_file *w = (wal_file *)f;
    int rc = wal_flush_file(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xFileControl(w->real, op, arg);
}

static int x_sector_size(sqlite3_file *f)
{
    wal_file *w = (wal_file *)f;
    return w->real->pMethods->xSectorSize(w->real);
}

static int x_device_characteristics(sqlite3_file *f)
{
    wal_file *w = (wal_file *)f;
    return w->real->pMethods->xDeviceCharacteristics(w->real);
}

static int x_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out)
{
    wal_file *w = (wal_file *)f;
    return w->real->pMethods->xShmMap(w->real, page, size, extend, out);
}

static int x_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    wal_file *w = (wal_file *)f;
    return w->real->pMethods->xShmLock(w->real, offset, n, flags);
}

static void x_shm_barrier(sqlite3_file *f)
{
    wal_file *w = (wal_file *)f;
    w->real->pMethods->xShmBarrier(w->real);
}

static int x_shm_unmap(sqlite3_file *f, int delete_flag)
{
    wal_file *w = (wal_file *)f;
    return w->real->pMethods->xShmUnmap(w->real, delete_flag);
}

static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **out)
{
    wal_file *w = (wal_file *)f;
    int rc = wal_flush_file(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xFetch(w->real, off, amt, out);
}

static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    wal_file *w = (wal_file *)f;
    return w->real->pMethods->xUnfetch(w->real, off, p);
}

static const sqlite3_io_methods wal_methods = {
    3, x_close, x_read, x_write, x_truncate, x_sync, x_file_size, x_lock, x_unlock,
    x_check_reserved_lock, x_file_control, x_sector_size, x_device_characteristics,
    x_shm_map, x_shm_lock, x_shm_barrier, x_shm_unmap, x_fetch, x_unfetch,
};

static int x_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    wal_file *w = (wal_file *)f;
    memset(w, 0, sizeof *w);
    w->real = (sqlite3_file *)(w + 1);
    int rc = real_vfs->xOpen(real_vfs, name, w->real, flags, out_flags);
    if (rc != SQLITE_OK)
        return rc;             /* base.pMethods stays NULL: no close */
    if (w->real->pMethods == NULL || w->real->pMethods->iVersion < 3) {
        if (w->real->pMethods)
            w->real->pMethods->xClose(w->real);
        return SQLITE_CANTOPEN; /* the default VFS always has all methods */
    }
    w->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    w->base.pMethods = &wal_methods;
    return SQLITE_OK;
}

/* The rest is the default VFS's. */
static int x_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int x_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int x_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *x_dl_open(sqlite3_vfs *v, const char *name)
{
    return real_vfs->xDlOpen(real_vfs, name);
}

static void x_dl_error(sqlite3_vfs *v, int n, char *out)
{
    real_vfs->xDlError(real_vfs, n, out);
}

static void (*x_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    return real_vfs->xDlSym(real_vfs, h, sym);
}

static void x_dl_close(sqlite3_vfs *v, void *h)
{
    real_vfs->xDlClose(real_vfs, h);
}

static int x_randomness(sqlite3_vfs *v, int n, char *out)
{
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int x_sleep(sqlite3_vfs *v, int us)
{
    return real_vfs->xSleep(real_vfs, us);
}

static int x_current_time(sqlite3_vfs *v, double *out)
{
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int x_get_last_error(sqlite3_vfs *v, int n, char *out)
{
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int x_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static sqlite3_vfs wal_vfs = {
    2, 0, 0, NULL, STORE_SQLITE_WAL_VFS, NULL, x_open, x_delete, x_access, x_full_pathname,
    x_dl_open, x_dl_error, x_dl_sym, x_dl_close, x_randomness, x_sleep, x_current_time,
    x_get_last_error, x_current_time_int64, NULL, NULL, NULL,
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered = SQLITE_ERROR;

static void register_once(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (real_vfs == NULL || real_vfs->iVersion < 2)
        return;
    wal_vfs.szOsFile = (int)sizeof(wal_file) + real_vfs->szOsFile;
    wal_vfs.mxPathname = real_vfs->mxPathname;
    registered = sqlite3_vfs_register(&wal_vfs, 0);
}

int store_sqlite_wal_register(void)
{
    pthread_once(&once, register_once);
    return registered;
}

int store_sqlite_wal_flush(sqlite3 *db)
{
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK ||
        f == NULL || f->pMethods != &wal_methods)
        return SQLITE_OK;      /* no WAL open, or not ours: nothing held */
    return wal_flush_file((wal_file *)f);
}
