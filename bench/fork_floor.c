/* fork_floor.c: how many children per second a tiny C program can fork
 * and reap here when it keeps CONCURRENCY of them alive at once, each
 * child exiting at once. The reference for the janitor's no-op cleanings
 * in scripts/bench_janitor.sh (a cleaning is at least a fork and a reap).
 * Usage: fork_floor COUNT CONCURRENCY; prints the rate (children/s). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int start_child(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0) {
        perror("fork_floor: fork");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fork_floor COUNT CONCURRENCY\n");
        return 2;
    }
    long count = atol(argv[1]), concurrency = atol(argv[2]);
    if (count <= 0 || concurrency <= 0) {
        fprintf(stderr, "fork_floor: COUNT and CONCURRENCY must be positive\n");
        return 2;
    }
    double t0 = now_s();
    long started = 0, reaped = 0;
    while (started < count && started < concurrency) {
        if (start_child() != 0)
            return 1;
        started++;
    }
    while (reaped < count) {
        if (wait(NULL) < 0) {
            perror("fork_floor: wait");
            return 1;
        }
        reaped++;
        if (started < count) {
            if (start_child() != 0)
                return 1;
            started++;
        }
    }
    printf("%.0f\n", count / (now_s() - t0));
    return 0;
}
