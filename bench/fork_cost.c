/* fork_cost.c: what one fork + _exit + waitpid costs on this machine, for a
 * small process with a 512 KB heap (about the janitor's worker factory).
 * Prints the best of 5 rounds of 500, in microseconds. Used by
 * scripts/bench_janitor.sh as the floor under one cleaning's worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(void)
{
    size_t heap_len = 512 << 10;
    char *heap = malloc(heap_len);
    if (heap == NULL)
        return 1;
    memset(heap, 1, heap_len);
    double best = 1e12;
    for (int round = 0; round < 5; round++) {
        double t0 = now_us();
        for (int i = 0; i < 500; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                heap[8192] = 2;         /* one copy-on-write, as a worker does many */
                _exit(0);
            }
            if (pid < 0 || waitpid(pid, NULL, 0) != pid) {
                perror("fork_cost");
                return 1;
            }
        }
        double per = (now_us() - t0) / 500;
        if (per < best)
            best = per;
    }
    printf("%.0f\n", best);
    return 0;
}
