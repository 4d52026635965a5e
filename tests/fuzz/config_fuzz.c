/* config_fuzz.c: the boskos resource YAML (src/server/config.c) on any
 * bytes. A parse either fails with a message that names the source, or
 * yields a config that passes its own validation again. */
#include <string.h>
#include "fuzz.h"
#include "server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[4096] = "";
    config *c = config_parse((const char *)data, size, "fuzz.yaml", err, sizeof err);
    if (c == NULL) {
        FUZZ_CHECK(strncmp(err, "fuzz.yaml", 9) == 0);
        return 0;
    }
    FUZZ_CHECK(c->n > 0);
    for (size_t i = 0; i < c->n; i++) {
        FUZZ_CHECK(c->entries[i].type != NULL && c->entries[i].state != NULL);
        for (size_t j = 0; j < c->entries[i].n_names; j++)
            FUZZ_CHECK(c->entries[i].names[j] != NULL);
    }
    FUZZ_CHECK(config_validate(c, "fuzz.yaml", err, sizeof err) == 0);
    config_free(c);
    return 0;
}
