/* dl_mhd.c: loads libmicrohttpd on first use (see dl_mhd.h for why). The
 * load runs once per process under pthread_once; its outcome, good or bad,
 * is kept for every later caller. The library is never unloaded. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include "core/dl_mhd.h"

dl_mhd_api dl_mhd;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int api_ready;
static char load_error[256];

static int resolve(void *lib)
{
#define DL_MHD_RESOLVE(member, symbol) \
    *(void **)&dl_mhd.member = dlsym(lib, #symbol); \
    if (dl_mhd.member == NULL) { \
        snprintf(load_error, sizeof load_error, \
                 "libmicrohttpd.so.12 lacks the function %s", #symbol); \
        return -1; \
    }
    DL_MHD_FUNCS(DL_MHD_RESOLVE)
#undef DL_MHD_RESOLVE
    return 0;
}

static void load(void)
{
    void *lib = dlopen("libmicrohttpd.so.12", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error,
                 "cannot load libmicrohttpd (libmicrohttpd.so.12), needed to "
                 "serve HTTP: %s (install the libmicrohttpd12 package)",
                 why ? why : "unknown error");
        return;
    }
    if (resolve(lib) != 0)
        return;
    api_ready = 1;
}

int dl_mhd_load(char *err, size_t err_len)
{
    if (pthread_once(&load_once, load) != 0) {
        snprintf(err, err_len, "cannot load libmicrohttpd: pthread_once failed");
        return -1;
    }
    if (!api_ready) {
        snprintf(err, err_len, "%s", load_error);
        return -1;
    }
    return 0;
}
