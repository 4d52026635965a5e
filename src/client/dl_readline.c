/* dl_readline.c: loads GNU readline on first use (see dl_readline.h for
 * why). The load runs once per process under pthread_once; its outcome,
 * good or bad, is kept for every later caller. The library is never
 * unloaded. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include "client/dl_readline.h"

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static dl_readline_api api;
static int api_ready;
static char load_error[256];

static int resolve(void *lib)
{
#define DL_READLINE_RESOLVE(member, symbol, kind) \
    *(void **)&api.member = dlsym(lib, #symbol); \
    if (api.member == NULL) { \
        snprintf(load_error, sizeof load_error, \
                 "libreadline.so.8 lacks the " kind " %s", #symbol); \
        return -1; \
    }
#define DL_READLINE_FUNC(member, symbol) DL_READLINE_RESOLVE(member, symbol, "function")
#define DL_READLINE_VAR(member, symbol) DL_READLINE_RESOLVE(member, symbol, "variable")
    DL_READLINE_FUNCS(DL_READLINE_FUNC)
    DL_READLINE_VARS(DL_READLINE_VAR)
#undef DL_READLINE_VAR
#undef DL_READLINE_FUNC
#undef DL_READLINE_RESOLVE
    return 0;
}

static void load(void)
{
    void *lib = dlopen("libreadline.so.8", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error,
                 "cannot load GNU readline (libreadline.so.8), needed for "
                 "line editing: %s (install the libreadline8 package)",
                 why ? why : "unknown error");
        return;
    }
    if (resolve(lib) != 0)
        return;
    api_ready = 1;
}

const dl_readline_api *dl_readline(char *err, size_t err_len)
{
    if (pthread_once(&load_once, load) != 0) {
        snprintf(err, err_len, "cannot load GNU readline: pthread_once failed");
        return NULL;
    }
    if (!api_ready) {
        snprintf(err, err_len, "%s", load_error);
        return NULL;
    }
    return &api;
}
