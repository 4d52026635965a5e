/* descendants.c: see descendants.h. The children of a process are read
 * from /proc/PID/task/TID/children (one file per thread: a child belongs to
 * the thread that forked it); on kernels without that file, from the
 * parent field of every /proc/PID/stat. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "janitor/descendants.h"

typedef struct {
    pid_t pids[DESCENDANTS_MAX];
    int len;
} pid_list;

static void add(pid_list *l, pid_t pid)
{
    if (pid > 0 && l->len < DESCENDANTS_MAX)
        l->pids[l->len++] = pid;
}

/* Appends the pids listed in a children file (nothing if it is gone). Read
 * with open/read into a stack buffer rather than stdio: in a worker, every
 * page written costs a copy-on-write fault (tens of microseconds here), and
 * fopen's FILE and buffer, fscanf's locale and state touched about ten. */
static void read_children_file(const char *path, pid_list *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[1024];
    size_t kept = 0;            /* bytes of a number cut at the buffer's end */
    for (;;) {
        ssize_t n = read(fd, buf + kept, sizeof buf - 1 - kept);
        if (n < 0 && errno == EINTR)
            continue;
        size_t len = kept + (n > 0 ? (size_t)n : 0);
        buf[len] = '\0';
        char *p = buf;
        for (;;) {
            while (*p == ' ' || *p == '\n')
                p++;
            char *end = p;
            while (*end >= '0' && *end <= '9')
                end++;
            if (end == p || (*end == '\0' && n > 0))
                break;              /* nothing, or a number that may go on */
            add(out, (pid_t)strtol(p, NULL, 10));
            p = end;
        }
        if (n <= 0)
            break;
        kept = len - (size_t)(p - buf);
        memmove(buf, p, kept);
    }
    close(fd);
}

/* The parent pid in /proc/PID/stat ("pid (comm) state ppid ..."; comm may
 * hold spaces and parentheses, so parse from the last ')'), or -1. */
static pid_t parent_of(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')');
    char state;
    long ppid;
    if (close_paren == NULL || sscanf(close_paren + 1, " %c %ld", &state, &ppid) != 2)
        return -1;
    return (pid_t)ppid;
}

/* Fallback: every process whose parent is pid, from /proc/[0-9]*. */
static void scan_children(pid_t pid, pid_list *out)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long child = isdigit((unsigned char)e->d_name[0]) ? strtol(e->d_name, NULL, 10) : 0;
        if (child > 0 && parent_of(child) == pid)
            add(out, (pid_t)child);
    }
    closedir(d);
}

/* Whether this kernel has the children files (CONFIG_PROC_CHILDREN). */
static int children_files(void)
{
    static int known = -1;
    if (known < 0)
        known = access("/proc/thread-self/children", R_OK) == 0;
    return known;
}

/* Appends the children of pid (all its threads'). */
static void children_of(pid_t pid, pid_list *out)
{
    if (!children_files()) {
        scan_children(pid, out);
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return;                  /* gone already */
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long tid = isdigit((unsigned char)e->d_name[0]) ? strtol(e->d_name, NULL, 10) : 0;
        if (tid <= 0)
            continue;
        char file[96];
        snprintf(file, sizeof file, "/proc/%ld/task/%ld/children", (long)pid, tid);
        read_children_file(file, out);   /* a thread that just ended has none */
    }
    closedir(d);
}

int kill_descendants(pid_t root, int (*spare)(pid_t pid, void *ctx), void *ctx)
{
    static pid_list found;       /* large: not on the stack of a worker */
    int self = root == getpid();
    /* The common end of a cleaning: no child at all, so nothing below. */
    siginfo_t info;
    if (self && waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT | __WALL) != 0 && errno == ECHILD)
        return 0;
    found.len = 0;
    if (self && children_files())
        read_children_file("/proc/thread-self/children", &found);   /* one read */
    else
        children_of(root, &found);
    if (spare != NULL) {
        int kept = 0;
        for (int i = 0; i < found.len; i++)
            if (!spare(found.pids[i], ctx))
                found.pids[kept++] = found.pids[i];
        found.len = kept;
    }
    /* Breadth first: each process is stopped, then its children listed. */
    for (int i = 0; i < found.len; i++) {
        kill(found.pids[i], SIGSTOP);
        children_of(found.pids[i], &found);
    }
    for (int i = 0; i < found.len; i++)
        kill(found.pids[i], SIGKILL);
    return found.len;
}
