/* config_test.c: the boskos YAML config: decoding and upstream's
 * validation texts, with lines. */
#include <stdlib.h>
#include "server/config.h"
#include "unit.h"

static char err[8192];

static config *parse(const char *yaml)
{
    err[0] = '\0';
    return config_parse(yaml, strlen(yaml), "c.yaml", err, sizeof err);
}

static void decodes(void)
{
    config *c = parse("Resources:\n- type: t\n  names: [a, b.c]\n  unknown: 1\n"
                      "- Type: d\n  state: dirty\n  min-count: 1\n  max-count: 3\n  lifespan: 48h\n"
                      "  needs: {t: 0}\n  config: {type: gce, content: x}\n");
    CHECK(c != NULL);
    if (c == NULL) {
        printf("  %s\n", err);
        return;
    }
    CHECK(c->n == 2);
    CHECK_STR(c->entries[0].state, "free");
    CHECK(c->entries[0].n_names == 2 && !CONFIG_IS_DYNAMIC(&c->entries[0]));
    CHECK_STR(c->entries[1].type, "d");
    CHECK(CONFIG_IS_DYNAMIC(&c->entries[1]));
    CHECK(c->entries[1].lifespan_ns == 48LL * 3600 * 1000000000LL);
    CHECK(c->entries[1].max_count == 3 && c->entries[1].line == 5);
    CHECK_STR(c->entries[1].config_type, "gce");
    config_free(c);
    c = parse("resources:\n- type: d\n  max-count: 1\n  lifespan: 1000\n");
    CHECK(c && c->entries[0].lifespan_ns == 1000);
    config_free(c);
}

static void validation(void)
{
    CHECK(parse("resources: []\n") == NULL);
    CHECK_STR(err, "c.yaml: empty config");
    CHECK(parse("") == NULL);
    CHECK_STR(err, "c.yaml: empty config");
    CHECK(parse("resources:\n- names: [a]\n") == NULL);
    CHECK_STR(err, "c.yaml: .0.type: must be set (line 2)");
    CHECK(parse("resources:\n- type: d\n  min-count: 2\n") == NULL);
    CHECK_STR(err, "c.yaml: [.0.max-count: must be >0 (line 2), .0.min-count: must be <= .0.max-count (line 2)]");
    CHECK(parse("resources:\n- type: s\n  names: [a]\n  min-count: 1\n  max-count: 1\n") == NULL);
    CHECK_STR(err, "c.yaml: [.0.min-count must be unset when the names property is set (line 2), "
                   ".0.max-count must be unset when the names property is set (line 2)]");
    CHECK(parse("resources:\n- type: s\n  names:\n  - a\n  - a\n") == NULL);
    CHECK_STR(err, "c.yaml: .0.names.1(a) is a duplicate (line 5)");
    CHECK(parse("resources:\n- type: s\n  names: [-a]\n") == NULL);
    CHECK(strstr(err, ".0.names.0(-a) is invalid: [a lowercase RFC 1123 subdomain must consist of") != NULL);
    CHECK(strstr(err, "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')] (line 3)") != NULL);
    CHECK(parse("resources:\n- type: d\n  max-count: 2\n  needs: {x: 1, s: 1}\n- type: s\n  names: [a]\n") == NULL);
    CHECK_STR(err, "c.yaml: [not enough resource of type s for provisioning, need for resource x that does not exist, "
                   "not enough resource of type x for provisioning]");
    CHECK(parse("resources:\n- type: d\n  max-count: 9000000000000000000\n  needs: {s: 9000000000000000000}\n"
                "- type: s\n  names: [a]\n") == NULL);
    CHECK_STR(err, "c.yaml: not enough resource of type s for provisioning");
    config *c = parse("resources:\n- type: d\n  max-count: 2\n  needs: {s: 1}\n- type: s\n  names: [a, b]\n");
    CHECK(c != NULL);
    config_free(c);
}

static void bad_yaml(void)
{
    CHECK(parse("resources:\n- type: [\n") == NULL);
    CHECK(strstr(err, "c.yaml:") == err && strstr(err, "invalid YAML") != NULL);
    CHECK(parse("resources:\n- type: t\n  min-count: lots\n") == NULL);
    CHECK_STR(err, "c.yaml:3: min-count: expected an integer");
    CHECK(parse("resources:\n- type: t\n  max-count: 1\n  lifespan: 3x\n") == NULL);
    CHECK_STR(err, "c.yaml:4: lifespan: time: unknown unit \"x\" in duration \"3x\"");
    CHECK(config_load_file("/nonexistent/c.yaml", err, sizeof err) == NULL);
    CHECK(strstr(err, "/nonexistent/c.yaml") != NULL);
}

int main(void)
{
    RUN(decodes);
    RUN(validation);
    RUN(bad_yaml);
    UNIT_EXIT();
}
