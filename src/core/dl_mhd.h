/* dl_mhd.h: libmicrohttpd loaded at run time.
 *
 * bosk does not link libmicrohttpd, so that `bosk run` and the REPL start
 * without loading it (and its GnuTLS dependencies). The first caller of
 * dl_mhd_load() dlopen's libmicrohttpd.so.12 and resolves the functions in
 * DL_MHD_FUNCS, once per process (pthread_once: threads may race to it).
 * Callers then go through the table: dl_mhd.start_daemon(...) instead of
 * MHD_start_daemon(...). Used by `bosk server` and the janitor's
 * --metrics-listen. */
#ifndef BOSK_DL_MHD_H
#define BOSK_DL_MHD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <microhttpd.h>

/* X(member, libmicrohttpd symbol) for every function bosk calls. */
#define DL_MHD_FUNCS(X) \
    X(start_daemon, MHD_start_daemon) \
    X(stop_daemon, MHD_stop_daemon) \
    X(quiesce_daemon, MHD_quiesce_daemon) \
    X(get_daemon_info, MHD_get_daemon_info) \
    X(create_response_from_buffer, MHD_create_response_from_buffer) \
    X(add_response_header, MHD_add_response_header) \
    X(queue_response, MHD_queue_response) \
    X(destroy_response, MHD_destroy_response) \
    X(lookup_connection_value, MHD_lookup_connection_value) \
    X(get_connection_values, MHD_get_connection_values) \
    X(get_connection_info, MHD_get_connection_info) \
    X(get_reason_phrase_for, MHD_get_reason_phrase_for) \
    X(suspend_connection, MHD_suspend_connection) \
    X(resume_connection, MHD_resume_connection)

typedef struct {
#define DL_MHD_MEMBER(member, symbol) __typeof__(symbol) *member;
    DL_MHD_FUNCS(DL_MHD_MEMBER)
#undef DL_MHD_MEMBER
} dl_mhd_api;

/* The table; valid only after dl_mhd_load() returned 0. */
extern dl_mhd_api dl_mhd;

/* Loads the library once. 0 on success; -1 with a message in err (library
 * or a symbol missing). The outcome is the same on every call. */
int dl_mhd_load(char *err, size_t err_len);

#endif
