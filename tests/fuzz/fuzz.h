/* fuzz.h: what every harness shares. FUZZ_CHECK states an invariant the
 * code under test promises; a broken one aborts, so libFuzzer keeps the
 * input as a crash reproducer just as it does for an ASan report. */
#ifndef BOSK_FUZZ_H
#define BOSK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
    abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
