/* store_sqlite_wal.h: the SQLite VFS "bosk-wal", which writes each
 * commit's WAL frames with one pwrite instead of two per page
 * (docs/storage.md, "Where the committer's time goes"). */
#ifndef BOSK_STORE_SQLITE_WAL_H
#define BOSK_STORE_SQLITE_WAL_H

#include <sqlite3.h>

#define STORE_SQLITE_WAL_VFS "bosk-wal"

/* Registers the VFS (once; later calls return the first result).
 * SQLITE_OK or SQLite's error code. */
int store_sqlite_wal_register(void);

/* Writes out whatever the WAL file of db's main database still holds back
 * (nothing, when SQLite wrote its frames the way it does now: each
 * commit's last frame writes the batch). SQLITE_OK or the write's error. */
int store_sqlite_wal_flush(sqlite3 *db);

#endif
