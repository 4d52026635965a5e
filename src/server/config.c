/* config.c: reads the boskos resource YAML with libyaml's document API and
 * validates it (see config.h). Keys match case-insensitively and unknown
 * keys are ignored, as Go's JSON decoding of the YAML does. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>
#include "server/config.h"
#include "core/godur.h"
#include "core/gojson.h"

/* Repeated keys noted in full; beyond, only counted. */
#define MAX_WARNINGS 10

typedef struct {
    yaml_document_t *doc;
    const char *source;
    jbuf err;             /* first decode error */
    size_t budget;        /* nodes left to decode, aliases expanded */
    jbuf warnings;        /* repeated keys (an error), "; "-separated */
    size_t n_warnings;
} decoder;

static void decode_error(decoder *d, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void decode_error(decoder *d, const yaml_node_t *n, const char *fmt, ...)
{
    if (d->err.len)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jbuf_printf(&d->err, "%s:%lu: %s", d->source, (unsigned long)n->start_mark.line + 1, msg);
}

static yaml_node_t *node(decoder *d, int index)
{
    return yaml_document_get_node(d->doc, index);
}

/* libyaml keeps an alias as a second reference to its anchor's node, so
 * the document stays small, but decoding visits the node once per
 * reference: a few KB of nested aliases would expand to millions of
 * copies. Every collection charges its children to a budget of the
 * document's own node count plus CONFIG_MAX_ALIAS_NODES. */
static int charge(decoder *d, const yaml_node_t *n, size_t children)
{
    if (children <= d->budget) {
        d->budget -= children;
        return 0;
    }
    decode_error(d, n, "aliases expand to more than %d nodes beyond the file's own; "
                 "refusing the config (an alias bomb?)", CONFIG_MAX_ALIAS_NODES);
    return -1;
}

static int is_null(const yaml_node_t *n)
{
    if (n == NULL)
        return 1;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static char *scalar_dup(decoder *d, const yaml_node_t *n, const char *field)
{
    if (is_null(n))
        return NULL;
    if (n->type != YAML_SCALAR_NODE) {
        decode_error(d, n, "%s: expected a string", field);
        return NULL;
    }
    char *s = strndup((const char *)n->data.scalar.value, n->data.scalar.length);
    if (s == NULL)
        decode_error(d, n, "%s: out of memory", field);
    return s;
}

static int scalar_int(decoder *d, const yaml_node_t *n, const char *field, int64_t *out)
{
    if (is_null(n))
        return 0;
    const char *v = n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : "";
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (n->type != YAML_SCALAR_NODE || !*v || *end || errno) {
        decode_error(d, n, "%s: expected an integer", field);
        return -1;
    }
    *out = x;
    return 0;
}

/* A null leaves a string as it was, as it leaves any Go string. */
static int string_field(decoder *d, const yaml_node_t *v, const char *field, char **slot)
{
    if (is_null(v))
        return 0;
    char *s = scalar_dup(d, v, field);
    if (s == NULL)
        return -1;
    free(*slot);
    *slot = s;
    return 0;
}

/* ---- keys in the order Go applies them ----
 * Boskos reads its config with sigs.k8s.io/yaml: the YAML mapping becomes
 * a Go map (a key repeated exactly keeps its last value), is re-encoded
 * as a JSON object (keys sorted bytewise) and decoded by encoding/json,
 * which assigns every key that matches a field case-insensitively, in
 * that order. So of `resources:` and `Resources:` the lowercase one wins
 * wherever it stands, and of two `names:` the last one. */
typedef struct {
    const char *key;
    size_t pos;
    const yaml_node_t *value;
} key_ref;

static int cmp_key_ref(const void *a, const void *b)
{
    const key_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static int cmp_key_ref_fold(const void *a, const void *b)
{
    const key_ref *x = a, *y = b;
    int c = strcasecmp(x->key, y->key);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static unsigned long key_line(decoder *d, const yaml_node_t *map, size_t pos)
{
    return (unsigned long)node(d, map->data.mapping.pairs.start[pos].key)->start_mark.line + 1;
}

/* One complaint for a group of keys that name the same thing (in file
 * order), saying which value upstream would have kept. A repeated key is
 * refused rather than resolved: it is almost always an editing mistake
 * that would silently drop a list of resources. Go merges differently spelt `needs` and
 * `config` keys, since it decodes them into the same map or struct. */
static void warn_group(decoder *d, const yaml_node_t *map, const key_ref *group, size_t n)
{
    if (d->n_warnings++ >= MAX_WARNINGS)
        return;
    const key_ref *last = &group[0];
    int spellings = 0;
    for (size_t i = 1; i < n; i++) {
        if (cmp_key_ref(&group[i], last) > 0)
            last = &group[i];
        spellings |= strcmp(group[i].key, group[0].key) != 0;
    }
    int merges = spellings && (!strcasecmp(last->key, "needs") || !strcasecmp(last->key, "config"));
    if (d->warnings.len)
        jbuf_adds(&d->warnings, "; ");
    jbuf_printf(&d->warnings, "%s:%lu: key %s given %zu times (lines", d->source,
                key_line(d, map, group[0].pos), group[0].key, n);
    for (size_t i = 0; i < n && i < 5; i++)
        jbuf_printf(&d->warnings, "%s%lu", i ? ", " : " ", key_line(d, map, group[i].pos));
    jbuf_adds(&d->warnings, n > 5 ? ", ...)" : ")");
    if (merges)
        jbuf_adds(&d->warnings, ": give it once (upstream boskos would silently merge the values)");
    else
        jbuf_printf(&d->warnings, ": give it once (upstream boskos would silently use line %lu)",
                    key_line(d, map, last->pos));
}

/* Warns about keys that repeat one another: exactly, or for the fields of
 * a struct (fold) case-insensitively. refs: sorted by Go's order. */
static void warn_repeats(decoder *d, const yaml_node_t *map, const key_ref *refs, size_t k, int fold)
{
    if (k < 2)
        return;
    key_ref *by_name = malloc(k * sizeof *by_name);
    if (by_name == NULL)
        return; /* a warning is not worth failing for */
    memcpy(by_name, refs, k * sizeof *by_name);
    int (*cmp)(const void *, const void *) = fold ? cmp_key_ref_fold : cmp_key_ref;
    qsort(by_name, k, sizeof *by_name, cmp);
    for (size_t a = 0, b; a < k; a = b) {
        for (b = a + 1; b < k; b++)
            if ((fold ? strcasecmp : strcmp)(by_name[a].key, by_name[b].key) != 0)
                break;
        if (b - a > 1)
            warn_group(d, map, &by_name[a], b - a);
    }
    free(by_name);
}

/* The scalar-keyed pairs of mapping n, sorted, each key once (its last
 * value); *count of them. NULL with the error set on failure. Other keys
 * are skipped, as unknown fields are. fold: n is a struct, whose fields
 * match keys case-insensitively (else a map: exact keys). */
static key_ref *go_order(decoder *d, const yaml_node_t *n, size_t *count, int fold)
{
    size_t total = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (charge(d, n, total) != 0)
        return NULL;
    key_ref *refs = calloc(total + 1, sizeof *refs);
    if (refs == NULL) {
        decode_error(d, n, "out of memory");
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < total; i++) {
        const yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        const yaml_node_t *key = node(d, p->key);
        if (key->type == YAML_SCALAR_NODE)
            refs[k++] = (key_ref){ (const char *)key->data.scalar.value, i, node(d, p->value) };
    }
    if (k > 1)
        qsort(refs, k, sizeof *refs, cmp_key_ref);
    warn_repeats(d, n, refs, k, fold);
    size_t kept = 0;
    for (size_t i = 0; i < k; i++)
        if (i + 1 == k || strcmp(refs[i].key, refs[i + 1].key) != 0)
            refs[kept++] = refs[i];
    *count = kept;
    return refs;
}

static int lifespan(decoder *d, const yaml_node_t *n, config_entry *e)
{
    e->lifespan_ns = 0;
    e->has_lifespan = 0;
    if (is_null(n))
        return 0;
    if (n->type != YAML_SCALAR_NODE) {
        decode_error(d, n, "%s: expected a duration", "lifespan");
        return -1;
    }
    const char *v = (const char *)n->data.scalar.value;
    char *end, msg[256];
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v && !*end && !errno) {
        e->lifespan_ns = x;
    } else if (godur_parse(v, n->data.scalar.length, &e->lifespan_ns, msg, sizeof msg) != 0) {
        decode_error(d, n, "lifespan: %s", msg);
        return -1;
    }
    e->has_lifespan = e->lifespan_ns != 0;
    return 0;
}

static void names_free(config_entry *e)
{
    for (size_t i = 0; i < e->n_names; i++)
        free(e->names[i]);
    free(e->names);
    free(e->name_lines);
    e->names = NULL;
    e->name_lines = NULL;
    e->n_names = 0;
}

/* A list replaces the one a previous `names` key gave (Go decodes a JSON
 * array into a slice afresh). */
static int names(decoder *d, const yaml_node_t *n, config_entry *e)
{
    names_free(e);
    if (is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE) {
        decode_error(d, n, "%s: expected a list", "names");
        return -1;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (charge(d, n, count) != 0)
        return -1;
    e->names = calloc(count + 1, sizeof *e->names);
    e->name_lines = calloc(count + 1, sizeof *e->name_lines);
    if (e->names == NULL || e->name_lines == NULL) {
        decode_error(d, n, "%s: out of memory", "names");
        return -1;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *item = node(d, *it);
        char *name = is_null(item) ? strdup("") : scalar_dup(d, item, "names");
        if (name == NULL) {
            decode_error(d, item, "%s: out of memory", "names");
            return -1;
        }
        e->name_lines[e->n_names] = (int)item->start_mark.line + 1;
        e->names[e->n_names++] = name;
    }
    return 0;
}

/* Fields a later `config` key names replace those of an earlier one (Go
 * decodes into the same struct). */
static int mason_config(decoder *d, const yaml_node_t *n, config_entry *e)
{
    if (is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE) {
        decode_error(d, n, "%s: expected a mapping", "config");
        return -1;
    }
    size_t count;
    key_ref *refs = go_order(d, n, &count, 1);
    if (refs == NULL)
        return -1;
    for (size_t i = 0; i < count && !d->err.len; i++) {
        char **slot = !strcasecmp(refs[i].key, "type") ? &e->config_type
                    : !strcasecmp(refs[i].key, "content") ? &e->config_content : NULL;
        if (slot != NULL)
            string_field(d, refs[i].value, "config", slot);
    }
    free(refs);
    return d->err.len ? -1 : 0;
}

/* One need from a key and value; the key must name a type. */
static int need_of(decoder *d, const key_ref *ref, const yaml_node_t *map, config_need *out)
{
    const yaml_node_t *key = node(d, map->data.mapping.pairs.start[ref->pos].key);
    if (is_null(key)) {
        decode_error(d, key, "needs: a key must name a resource type, not be null");
        return -1;
    }
    out->count = 0;
    if (scalar_int(d, ref->value, "needs", &out->count) != 0)
        return -1;
    out->type = scalar_dup(d, key, "needs");
    return out->type ? 0 : -1;
}

static void needs_free(config_entry *e)
{
    for (size_t i = 0; i < e->n_needs; i++)
        free(e->needs[i].type);
    free(e->needs);
    e->needs = NULL;
    e->n_needs = 0;
}

/* Needs are kept sorted by type. A later `needs` key adds to an earlier
 * one's, replacing the counts of types both name (Go decodes into the
 * same map): a merge of two sorted lists. */
static int needs(decoder *d, const yaml_node_t *n, config_entry *e)
{
    if (is_null(n)) {
        needs_free(e); /* a null sets a Go map to nil */
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE) {
        decode_error(d, n, "%s: expected a mapping", "needs");
        return -1;
    }
    size_t count;
    key_ref *refs = go_order(d, n, &count, 0);
    if (refs == NULL)
        return -1;
    config_need *merged = calloc(e->n_needs + count + 1, sizeof *merged);
    if (merged == NULL) {
        free(refs);
        decode_error(d, n, "%s: out of memory", "needs");
        return -1;
    }
    size_t i = 0, j = 0, k = 0;
    int rc = 0;
    while (rc == 0 && (i < e->n_needs || j < count)) {
        int c = i == e->n_needs ? 1 : j == count ? -1 : strcmp(e->needs[i].type, refs[j].key);
        if (c < 0) {
            merged[k++] = e->needs[i++];
            continue;
        }
        if (c == 0)
            free(e->needs[i++].type);
        rc = need_of(d, &refs[j++], n, &merged[k]);
        k += rc == 0;
    }
    while (i < e->n_needs)
        free(e->needs[i++].type);
    free(e->needs);
    free(refs);
    e->needs = merged;
    e->n_needs = k;
    return rc;
}

static int entry_field(decoder *d, const char *key, const yaml_node_t *v, config_entry *e)
{
    if (!strcasecmp(key, "type") || !strcasecmp(key, "state")) {
        return string_field(d, v, !strcasecmp(key, "type") ? "type" : "state",
                            !strcasecmp(key, "type") ? &e->type : &e->state);
    } else if (!strcasecmp(key, "names")) {
        return names(d, v, e);
    } else if (!strcasecmp(key, "min-count")) {
        return scalar_int(d, v, "min-count", &e->min_count);
    } else if (!strcasecmp(key, "max-count")) {
        return scalar_int(d, v, "max-count", &e->max_count);
    } else if (!strcasecmp(key, "lifespan")) {
        return lifespan(d, v, e);
    } else if (!strcasecmp(key, "config")) {
        return mason_config(d, v, e);
    } else if (!strcasecmp(key, "needs")) {
        return needs(d, v, e);
    }
    return d->err.len ? -1 : 0;
}

static int entry(decoder *d, const yaml_node_t *n, config_entry *e)
{
    e->line = (int)n->start_mark.line + 1;
    if (n->type != YAML_MAPPING_NODE) {
        decode_error(d, n, "%s: expected a mapping", "resources entry");
        return -1;
    }
    size_t count;
    key_ref *refs = go_order(d, n, &count, 1);
    if (refs == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++)
        rc = entry_field(d, refs[i].key, refs[i].value, e);
    free(refs);
    if (rc != 0)
        return -1;
    if ((e->state == NULL && (e->state = strdup("free")) == NULL) ||
        (e->type == NULL && (e->type = strdup("")) == NULL)) {
        decode_error(d, n, "%s: out of memory", "resources entry");
        return -1;
    }
    return 0;
}

static void entry_free(config_entry *e);

static void entries_free(config *c)
{
    for (size_t i = 0; i < c->n; i++)
        entry_free(&c->entries[i]);
    free(c->entries);
    c->entries = NULL;
    c->n = 0;
}

/* A list replaces the one a previous `resources` key gave. */
static int resources(decoder *d, const yaml_node_t *n, config *c)
{
    entries_free(c);
    if (is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE) {
        decode_error(d, n, "%s: expected a list", "resources");
        return -1;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (charge(d, n, count) != 0)
        return -1;
    c->entries = calloc(count + 1, sizeof *c->entries);
    if (c->entries == NULL) {
        decode_error(d, n, "%s: out of memory", "resources");
        return -1;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++)
        if (entry(d, node(d, *it), &c->entries[c->n++]) != 0)
            return -1;
    return 0;
}

static int decode(decoder *d, config *c)
{
    yaml_node_t *root = yaml_document_get_root_node(d->doc);
    if (is_null(root))
        return 0;
    if (root->type != YAML_MAPPING_NODE) {
        decode_error(d, root, "%s: expected a mapping at the top", "config");
        return -1;
    }
    size_t count;
    key_ref *refs = go_order(d, root, &count, 1);
    if (refs == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++)
        if (!strcasecmp(refs[i].key, "resources"))
            rc = resources(d, refs[i].value, c);
    free(refs);
    return rc;
}

static void yaml_error(const yaml_parser_t *p, const char *source, char *err, size_t err_len)
{
    const yaml_mark_t *m = p->context ? &p->context_mark : &p->problem_mark;
    if (p->problem_mark.line || p->problem_mark.column)
        m = &p->problem_mark;
    snprintf(err, err_len, "%s:%lu:%lu: invalid YAML: %s%s%s", source,
             (unsigned long)m->line + 1, (unsigned long)m->column + 1,
             p->problem ? p->problem : "parse error", p->context ? " " : "",
             p->context ? p->context : "");
}

config *config_parse(const char *text, size_t len, const char *source, char *err, size_t err_len)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    config *c = calloc(1, sizeof *c);
    if (c == NULL || !yaml_parser_initialize(&parser)) {
        snprintf(err, err_len, "%s: out of memory", source);
        free(c);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(&parser, source, err, err_len);
        yaml_parser_delete(&parser);
        free(c);
        return NULL;
    }
    size_t doc_nodes = (size_t)(doc.nodes.top - doc.nodes.start);
    decoder d = { &doc, source, { 0 }, doc_nodes + CONFIG_MAX_ALIAS_NODES, { 0 }, 0 };
    jbuf_init(&d.err);
    jbuf_init(&d.warnings);
    int rc = decode(&d, c);
    if (rc != 0)
        snprintf(err, err_len, "%s", d.err.len ? d.err.data : "out of memory reading config");
    if (rc == 0 && d.n_warnings > MAX_WARNINGS)
        jbuf_printf(&d.warnings, "; %zu more repeated keys", d.n_warnings - MAX_WARNINGS);
    if (rc == 0 && d.warnings.len) {
        snprintf(err, err_len, "%s", d.warnings.oom ? "out of memory reading config" : d.warnings.data);
        rc = -1;
    }
    jbuf_free(&d.err);
    jbuf_free(&d.warnings);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc == 0 && config_validate(c, source, err, err_len) == 0)
        return c;
    config_free(c);
    return NULL;
}

config *config_load_file(const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_len, "cannot read config %s: %s", path, strerror(errno));
        return NULL;
    }
    jbuf b;
    jbuf_init(&b);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        jbuf_add(&b, chunk, n);
    int bad = ferror(f) || b.oom;
    fclose(f);
    config *c = NULL;
    if (bad)
        snprintf(err, err_len, "cannot read config %s: read error", path);
    else
        c = config_parse(b.data ? b.data : "", b.len, path, err, err_len);
    jbuf_free(&b);
    return c;
}

static void entry_free(config_entry *e)
{
    free(e->type);
    free(e->state);
    names_free(e);
    free(e->config_type);
    free(e->config_content);
    needs_free(e);
}

void config_free(config *c)
{
    if (c == NULL)
        return;
    entries_free(c);
    free(c);
}

/* ---- validation (upstream's ValidateConfig) ---- */

typedef struct {
    jbuf text;
    size_t count;
} errlist;

static void add_error(errlist *l, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_error(errlist *l, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (l->count++)
        jbuf_adds(&l->text, ", ");
    jbuf_adds(&l->text, msg);
    if (line > 0)
        jbuf_printf(&l->text, " (line %d)", line);
}

static int dns_label_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i + 1 < n))
            return 0;
    }
    return 1;
}

static int dns1123_ok(const char *s)
{
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (!dns_label_ok(s, n))
            return 0;
        if (dot == NULL)
            return 1;
        s = dot + 1;
    }
}

static const char dns_reason[] =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

static void check_name(errlist *l, size_t i, size_t j, const char *name, int line)
{
    int too_long = strlen(name) > 253, bad = !dns1123_ok(name);
    if (!too_long && !bad)
        return;
    add_error(l, line, ".%zu.names.%zu(%s) is invalid: [%s%s%s]", i, j, name,
              too_long ? "must be no more than 253 characters" : "",
              too_long && bad ? " " : "", bad ? dns_reason : "");
}

typedef struct {
    const char *name;
    size_t pos;
} name_ref;

static int cmp_name_ref(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* dup[k] = 1 for every occurrence of a name after its first (file order). */
static unsigned char *find_duplicates(const config *c, size_t total)
{
    name_ref *refs = calloc(total + 1, sizeof *refs);
    unsigned char *dup = calloc(total + 1, 1);
    if (refs == NULL || dup == NULL) {
        free(refs);
        free(dup);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        for (size_t j = 0; j < c->entries[i].n_names; j++, k++)
            refs[k] = (name_ref){ c->entries[i].names[j], k };
    if (total > 1)
        qsort(refs, total, sizeof *refs, cmp_name_ref);
    for (size_t m = 1; m < total; m++)
        if (strcmp(refs[m].name, refs[m - 1].name) == 0)
            dup[refs[m].pos] = 1;
    free(refs);
    return dup;
}

static void check_entry(errlist *l, const config *c, size_t i)
{
    const config_entry *e = &c->entries[i];
    if (e->type[0] == '\0')
        add_error(l, e->line, ".%zu.type: must be set", i);
    if (CONFIG_IS_DYNAMIC(e)) {
        if (e->max_count == 0)
            add_error(l, e->line, ".%zu.max-count: must be >0", i);
        if (e->min_count > e->max_count)
            add_error(l, e->line, ".%zu.min-count: must be <= .%zu.max-count", i, i);
    } else {
        if (e->min_count != 0)
            add_error(l, e->line, ".%zu.min-count must be unset when the names property is set", i);
        if (e->max_count != 0)
            add_error(l, e->line, ".%zu.max-count must be unset when the names property is set", i);
    }
}

/* Saturating arithmetic: absurd counts in a config must not overflow. */
static int64_t sat_mul(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
    return r;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return a < 0 ? INT64_MIN : INT64_MAX;
    return r;
}

static int64_t supply_of(const config *c, const char *type, int *exists)
{
    int64_t n = 0;
    *exists = 0;
    for (size_t i = 0; i < c->n; i++) {
        const config_entry *e = &c->entries[i];
        if (strcmp(e->type, type) != 0)
            continue;
        *exists = 1;
        n = sat_add(n, CONFIG_IS_DYNAMIC(e) ? e->max_count : (int64_t)e->n_names);
    }
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* needs: every needed type, in sorted order, against its supply. */
static void check_needs(errlist *l, const config *c)
{
    size_t total = 0;
    for (size_t i = 0; i < c->n; i++)
        total += CONFIG_IS_DYNAMIC(&c->entries[i]) ? c->entries[i].n_needs : 0;
    const char **types = calloc(total + 1, sizeof *types);
    if (types == NULL)
        return;
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        for (size_t j = 0; CONFIG_IS_DYNAMIC(&c->entries[i]) && j < c->entries[i].n_needs; j++)
            types[k++] = c->entries[i].needs[j].type;
    if (k > 1)
        qsort(types, k, sizeof *types, cmp_str);
    for (size_t m = 0; m < k; m++) {
        if (m > 0 && strcmp(types[m], types[m - 1]) == 0)
            continue;
        int64_t needed = 0;
        for (size_t i = 0; i < c->n; i++)
            for (size_t j = 0; CONFIG_IS_DYNAMIC(&c->entries[i]) && j < c->entries[i].n_needs; j++)
                if (strcmp(c->entries[i].needs[j].type, types[m]) == 0)
                    needed = sat_add(needed, sat_mul(c->entries[i].needs[j].count,
                                                     c->entries[i].max_count));
        int exists;
        int64_t supply = supply_of(c, types[m], &exists);
        if (!exists)
            add_error(l, 0, "need for resource %s that does not exist", types[m]);
        if (needed > supply)
            add_error(l, 0, "not enough resource of type %s for provisioning", types[m]);
    }
    free(types);
}

int config_validate(const config *c, const char *source, char *err, size_t err_len)
{
    if (c->n == 0) {
        snprintf(err, err_len, "%s: empty config", source);
        return -1;
    }
    size_t total = 0;
    for (size_t i = 0; i < c->n; i++)
        total += c->entries[i].n_names;
    unsigned char *dup = find_duplicates(c, total);
    if (dup == NULL) {
        snprintf(err, err_len, "%s: out of memory validating", source);
        return -1;
    }
    errlist l = { { 0 }, 0 };
    jbuf_init(&l.text);
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        const config_entry *e = &c->entries[i];
        check_entry(&l, c, i);
        for (size_t j = 0; j < e->n_names; j++, k++) {
            check_name(&l, i, j, e->names[j], e->name_lines[j]);
            if (dup[k])
                add_error(&l, e->name_lines[j], ".%zu.names.%zu(%s) is a duplicate", i, j, e->names[j]);
        }
    }
    check_needs(&l, c);
    free(dup);
    int rc = l.count ? -1 : 0;
    if (l.count == 1)
        snprintf(err, err_len, "%s: %s", source, l.text.data);
    else if (l.count > 1)
        snprintf(err, err_len, "%s: [%s]", source, l.text.data);
    jbuf_free(&l.text);
    return rc;
}
