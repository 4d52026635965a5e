/* core_test.c: the embedded-source table is complete and well formed. */
#include "unit.h"
#include "core/embed.h"

static void embedded_sources_have_cli_and_boskos(void)
{
    int cli = 0, boskos = 0;
    for (const struct embedded_source *s = embedded_sources; s->module; s++) {
        CHECK(s->chunkname[0] == '@');
        CHECK(strlen(s->text) == s->len);
        cli += strcmp(s->module, "bosk.cli") == 0;
        boskos += strcmp(s->module, "boskos") == 0;
    }
    CHECK(cli == 1);
    CHECK(boskos == 1);
}

int main(void)
{
    RUN(embedded_sources_have_cli_and_boskos);
    UNIT_EXIT();
}
