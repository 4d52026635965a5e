/* mini_janitor.c: the smallest program that does what the sleep benchmark
 * asks of bosk janitor, as a reference for scripts/bench_janitor.sh. One
 * process, no Lua, no threads, no logs: it keeps up to 50 resources leased
 * from a Boskos server (POST /acquire dirty -> cleaning, over one libcurl
 * keep-alive connection), forks a child per resource that runs
 * `sleep 0.2` (posix_spawn) and waits for it, and on each child's exit
 * acquires the next resource, then releases the finished one free.
 * Usage: mini_janitor URL TYPE CONCURRENCY. Exits 1 on any failure. */
#include <curl/curl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_SLOTS 256

static CURL *curl;
static const char *base_url;
static char body[16384];
static size_t body_len;

typedef struct {
    pid_t pid;          /* 0: free slot */
    char name[128];
} slot;

static size_t keep_body(char *data, size_t size, size_t n, void *unused)
{
    (void)unused;
    size_t len = size * n;
    if (body_len + len < sizeof body) {
        memcpy(body + body_len, data, len);
        body_len += len;
        body[body_len] = '\0';
    }
    return len;
}

/* POST base_url + path with an empty body -> HTTP status, or -1. */
static long post(const char *path)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    body_len = 0;
    body[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, url);
    if (curl_easy_perform(curl) != CURLE_OK)
        return -1;
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* Acquires one resource of rtype into s->name: 1, 0 when none is left. */
static int acquire(const char *rtype, slot *s)
{
    char path[256];
    snprintf(path, sizeof path, "/acquire?type=%s&state=dirty&dest=cleaning&owner=Janitor", rtype);
    long status = post(path);
    if (status == 404)
        return 0;
    const char *name = strstr(body, "\"name\":\"");
    const char *end = name ? strchr(name + 8, '"') : NULL;
    if (status != 200 || end == NULL) {
        fprintf(stderr, "mini_janitor: acquire: HTTP %ld: %s\n", status, body);
        exit(1);
    }
    snprintf(s->name, sizeof s->name, "%.*s", (int)(end - name - 8), name + 8);
    return 1;
}

static void release(const slot *s)
{
    char path[256];
    snprintf(path, sizeof path, "/release?name=%s&dest=free&owner=Janitor", s->name);
    long status = post(path);
    if (status != 200) {
        fprintf(stderr, "mini_janitor: release %s: HTTP %ld: %s\n", s->name, status, body);
        exit(1);
    }
}

/* The cleaning: a child that runs sleep 0.2 and waits for it. */
static void start_cleaning(slot *s)
{
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = { "sleep", "0.2", NULL };
        pid_t child;
        int status = 0;
        if (posix_spawnp(&child, "sleep", NULL, NULL, argv, environ) != 0 ||
            waitpid(child, &status, 0) != child)
            _exit(1);
        _exit(WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1);
    }
    if (pid < 0) {
        perror("mini_janitor: fork");
        exit(1);
    }
    s->pid = pid;
}

int main(int argc, char **argv)
{
    if (argc != 4 || atoi(argv[3]) < 1 || atoi(argv[3]) > MAX_SLOTS) {
        fprintf(stderr, "usage: mini_janitor URL TYPE CONCURRENCY (1-%d)\n", MAX_SLOTS);
        return 2;
    }
    base_url = argv[1];
    const char *rtype = argv[2];
    int concurrency = atoi(argv[3]);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (curl = curl_easy_init()) == NULL)
        return 1;
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_body);
    static slot slots[MAX_SLOTS];
    int running = 0, more = 1;
    for (int i = 0; i < concurrency && more; i++) {
        more = acquire(rtype, &slots[i]);
        if (more) {
            start_cleaning(&slots[i]);
            running++;
        }
    }
    while (running > 0) {
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) {
            perror("mini_janitor: wait");
            return 1;
        }
        for (int i = 0; i < concurrency; i++) {
            if (slots[i].pid != pid)
                continue;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "mini_janitor: cleaning of %s failed\n", slots[i].name);
                return 1;
            }
            slot done = slots[i];
            slots[i].pid = 0;
            running--;
            if (more && (more = acquire(rtype, &slots[i])) != 0) {
                start_cleaning(&slots[i]);
                running++;
            }
            release(&done);
            break;
        }
    }
    curl_easy_cleanup(curl);
    return 0;
}
