/* unit.h: a TAP-printing harness for C unit tests, one binary per file in
 * tests/unit/. CHECK records a failure and goes on; main prints the plan
 * line (so tests/run.sh and prove see a binary that stopped early) and
 * returns nonzero when any check failed. */
#ifndef BOSK_UNIT_H
#define BOSK_UNIT_H
#include <stdio.h>
#include <string.h>

static int unit_failed_checks;
static int unit_case_failed;
static int unit_cases_run;

#define CHECK(cond) do { if (!(cond)) { \
    printf("  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    unit_case_failed = 1; } } while (0)
#define CHECK_STR(got, want) do { const char *g_ = (got), *w_ = (want); \
    if (g_ == NULL || strcmp(g_, w_) != 0) { \
        printf("  %s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, g_ ? g_ : "(null)", w_); \
        unit_case_failed = 1; } } while (0)
#define RUN(fn) do { unit_case_failed = 0; fn(); \
    printf("%s - %s\n", unit_case_failed ? "not ok" : "ok", #fn); \
    unit_failed_checks += unit_case_failed; unit_cases_run++; } while (0)
#define UNIT_EXIT() do { printf("1..%d\n", unit_cases_run); \
    return unit_failed_checks ? 1 : 0; } while (0)
#endif
