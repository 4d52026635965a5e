/* config.h: the upstream boskos resource file (docs/protocol.md §3.8), parsed
 * with libyaml and validated as upstream validates it. Errors carry the
 * file name and the YAML line of the offending entry. */
#ifndef BOSK_CONFIG_H
#define BOSK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *type;
    int64_t count;
} config_need;

typedef struct {
    char *type;
    char *state;              /* "free" when not given */
    char **names;
    size_t n_names;
    int64_t min_count, max_count;
    int64_t lifespan_ns;      /* 0: none */
    int has_lifespan;
    char *config_type, *config_content;
    config_need *needs;
    size_t n_needs;
    int line;                 /* 1-based line of the entry */
    int *name_lines;          /* line of each name */
} config_entry;

typedef struct {
    config_entry *entries;
    size_t n;
} config;

/* An entry without names describes dynamic resources (a DRLC). */
#define CONFIG_IS_DYNAMIC(e) ((e)->n_names == 0)

/* Aliases may make decoding visit at most this many nodes beyond those the
 * file itself holds; more is refused as an alias bomb (docs/limits-config.md). */
#define CONFIG_MAX_ALIAS_NODES 100000

/* Parses and validates. NULL with the message in err on failure. */
config *config_load_file(const char *path, char *err, size_t err_len);
config *config_parse(const char *text, size_t len, const char *source, char *err, size_t err_len);
void config_free(config *c);

/* Upstream's validation only (§3.8); 0 or -1 with err. */
int config_validate(const config *c, const char *source, char *err, size_t err_len);

#endif
