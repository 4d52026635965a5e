/* dl_curl.h: libcurl loaded at run time.
 *
 * bosk does not link libcurl: loading it (and its TLS, HTTP/2, LDAP
 * dependencies) costs more than the whole start of `bosk run`. The first
 * caller of dl_curl() dlopen's libcurl.so.4, resolves the functions listed
 * in DL_CURL_FUNCS and runs curl_global_init, once per process (pthread_once,
 * so worker threads may race to it safely). Callers then go through the
 * returned table: api->easy_init() instead of curl_easy_init(). */
#ifndef BOSK_DL_CURL_H
#define BOSK_DL_CURL_H

#include <stddef.h>
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

/* X(member, libcurl symbol) for every libcurl function bosk calls. */
#define DL_CURL_FUNCS(X) \
    X(global_init, curl_global_init) \
    X(easy_init, curl_easy_init) \
    X(easy_setopt, curl_easy_setopt) \
    X(easy_perform, curl_easy_perform) \
    X(easy_getinfo, curl_easy_getinfo) \
    X(easy_cleanup, curl_easy_cleanup) \
    X(easy_strerror, curl_easy_strerror) \
    X(slist_append, curl_slist_append) \
    X(slist_free_all, curl_slist_free_all)

typedef struct {
#define DL_CURL_MEMBER(member, symbol) __typeof__(symbol) *member;
    DL_CURL_FUNCS(DL_CURL_MEMBER)
#undef DL_CURL_MEMBER
} dl_curl_api;

/* The loaded API, or NULL with a message in err (library missing, symbol
 * missing, curl_global_init failed). The result is the same on every call. */
const dl_curl_api *dl_curl(char *err, size_t err_len);

#endif
