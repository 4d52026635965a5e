/* config_test.c: the boskos YAML config: decoding and upstream's
 * validation texts, with lines. */
#include <stdlib.h>
#include <time.h>
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

/* Repeated keys used to overflow a heap buffer (a fresh array per key, a
 * running count). Now the config is refused, naming the file, the key and
 * its lines, and what upstream boskos would have done silently. */
static void repeated_keys(void)
{
    config *c = parse("resources:\n- type: t\n  names: [a]\nresources:\n- type: t\n  names: [b, c]\n"
                            "- type: u\n  names: [d]\n");
    CHECK(c == NULL && strstr(err, "c.yaml:1: key resources given 2 times (lines 1, 4): give it once "
                                   "(upstream boskos would silently use line 4)") != NULL);
    config_free(c);
    /* keys of a struct match case-insensitively: resources and Resources repeat */
    c = parse("resources:\n- type: t\n  names: [a]\nResources:\n- type: t\n  names: [b]\n");
    CHECK(c == NULL && strstr(err, "key resources given 2 times (lines 1, 4)") != NULL);
    config_free(c);
    c = parse("resources:\n- type: t\n  names: [a]\n  names: [b, c, d]\n  Names: [e, f, g, h, i]\n");
    CHECK(c == NULL && strstr(err, "c.yaml:3: key names given 3 times (lines 3, 4, 5)") != NULL);
    config_free(c);
    c = parse("resources:\n- type: d\n  max-count: 1\n  needs: {a: 1, b: 1}\n  Needs: {c: 3}\n"
                    "- type: a\n  names: [x, y]\n");
    CHECK(c == NULL && strstr(err, "would silently merge the values") != NULL);
    config_free(c);
    c = parse("resources:\n- type: d\n  max-count: 1\n  needs: {s: 5, s: 1}\n- type: s\n  names: [a]\n");
    CHECK(c == NULL && strstr(err, "c.yaml:4: key s given 2 times") != NULL);
    config_free(c);
    c = parse("resources:\n- type: t\n  names: [a, b]\n");
    CHECK(c != NULL && c->n == 1 && c->entries[0].n_names == 2);
    config_free(c);
}

/* What wins a repetition is validated like any config: errors name the line. */
static void repeated_keys_invalid(void)
{
    CHECK(parse("resources:\n- type: t\n  names: [B]\n") == NULL);
    CHECK(strstr(err, "c.yaml: .0.names.0(B) is invalid") == err && strstr(err, "(line 3)") != NULL);
    CHECK(parse("resources:\n- type: t\n  names: [a]\n  names: lots\n") == NULL);
    CHECK_STR(err, "c.yaml:4: names: expected a list");
    CHECK(parse("resources:\n- type: d\n  max-count: 1\n  needs: {~: 1}\n") == NULL);
    CHECK_STR(err, "c.yaml:4: needs: a key must name a resource type, not be null");
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* k entries aliasing one entry that names m names: k*m names from a file
 * of about 5k + 6m bytes. */
static char *bomb(int k, int m)
{
    size_t cap = (size_t)(k * 8 + m * 10 + 200);
    char *s = malloc(cap), *p = s;
    p += sprintf(p, "x: &n [");
    for (int i = 0; i < m; i++)
        p += sprintf(p, "%sn%d", i ? ", " : "", i);
    p += sprintf(p, "]\nresources:\n- &e {type: t, names: *n}\n");
    for (int i = 1; i < k; i++)
        p += sprintf(p, "- *e\n");
    return s;
}

/* 2000 x 2000 names from 22 KB: about 6 s and 400 MB before the cap. */
static void alias_bomb(void)
{
    char *text = bomb(2000, 2000);
    double t0 = now();
    CHECK(parse(text) == NULL);
    double took = now() - t0;
    CHECK(strstr(err, "c.yaml:") == err);
    CHECK(strstr(err, "aliases expand to more than 100000 nodes beyond the file's own") != NULL);
    CHECK(took < 2);
    printf("  # 22 KB alias bomb refused in %.3f s\n", took);
    free(text);
    /* ordinary aliasing stays fine */
    config *c = parse("resources:\n- type: d\n  max-count: 1\n  needs: &n {s: 1}\n"
                      "- type: e\n  max-count: 1\n  needs: *n\n- type: s\n  names: [a, b]\n");
    CHECK(c != NULL);
    config_free(c);
}

int main(void)
{
    RUN(decodes);
    RUN(validation);
    RUN(bad_yaml);
    RUN(repeated_keys);
    RUN(repeated_keys_invalid);
    RUN(alias_bomb);
    UNIT_EXIT();
}
