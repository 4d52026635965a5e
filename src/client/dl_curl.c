/* dl_curl.c: loads libcurl on first use (see dl_curl.h for why). The load
 * runs once per process under pthread_once; its outcome, good or bad, is
 * kept for every later caller. The library is never unloaded. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include "client/dl_curl.h"

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static dl_curl_api api;
static int api_ready;
static char load_error[256];

static int resolve(void *lib)
{
#define DL_CURL_RESOLVE(member, symbol) \
    *(void **)&api.member = dlsym(lib, #symbol); \
    if (api.member == NULL) { \
        snprintf(load_error, sizeof load_error, \
                 "libcurl.so.4 lacks the function %s", #symbol); \
        return -1; \
    }
    DL_CURL_FUNCS(DL_CURL_RESOLVE)
#undef DL_CURL_RESOLVE
    return 0;
}

static void load(void)
{
    void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error,
                 "cannot load libcurl (libcurl.so.4), needed for HTTP: %s "
                 "(install the libcurl4 package)", why ? why : "unknown error");
        return;
    }
    if (resolve(lib) != 0)
        return;
    CURLcode rc = api.global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        snprintf(load_error, sizeof load_error, "curl_global_init failed: %s",
                 api.easy_strerror(rc));
        return;
    }
    api_ready = 1;
}

const dl_curl_api *dl_curl(char *err, size_t err_len)
{
    if (pthread_once(&load_once, load) != 0) {
        snprintf(err, err_len, "cannot load libcurl: pthread_once failed");
        return NULL;
    }
    if (!api_ready) {
        snprintf(err, err_len, "%s", load_error);
        return NULL;
    }
    return &api;
}
