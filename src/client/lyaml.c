/* lyaml.c: module "bosk.yaml", YAML text -> Lua values, built on libyaml's
 * event parser. Used by UserData:extract, whose values are YAML (or JSON,
 * which is YAML) written by Go's yaml.Marshal or by bosk.
 *
 *   yaml.decode(text) -> value   or   nil, message
 *
 * Mappings become tables, sequences arrays, plain scalars are resolved as
 * YAML 1.2's core schema does (null, booleans, integers, floats); quoted
 * and block scalars stay strings. Only the first document is read. Aliases
 * are refused: they are rare in user data and allow exponential blow-up. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include <lauxlib.h>
#include "core/modules.h"

#define PARSER_META "bosk.yaml.parser"
#define MAX_DEPTH 200

/* The parser lives in a userdata so __gc deletes it even when a Lua error
 * (out of memory) unwinds through decode. */
typedef struct {
    yaml_parser_t parser;
    int ready;
    char error[256];
} parser_box;

/* parser.__gc(box): deletes the libyaml parser if decode did not. */
static int box_gc(lua_State *L)
{
    parser_box *box = luaL_checkudata(L, 1, PARSER_META);
    if (box->ready) {
        box->ready = 0;
        yaml_parser_delete(&box->parser);
    }
    return 0;
}

static int next_event(parser_box *box, yaml_event_t *ev)
{
    if (yaml_parser_parse(&box->parser, ev))
        return 0;
    snprintf(box->error, sizeof box->error, "yaml: line %zu: %s",
             box->parser.problem_mark.line + 1,
             box->parser.problem ? box->parser.problem : "parse error");
    return -1;
}

static int is_match(const char *s, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (strcmp(s, words[i]) == 0)
            return 1;
    return 0;
}

/* Pushes a plain scalar resolved by the core schema. */
static void push_plain(lua_State *L, const char *s, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    if (strlen(s) != len) {
        lua_pushlstring(L, s, len);
    } else if (is_match(s, nulls)) {
        lua_pushnil(L);
    } else if (is_match(s, trues) || is_match(s, falses)) {
        lua_pushboolean(L, is_match(s, trues));
    } else if (strpbrk(s, "xX") != NULL || lua_stringtonumber(L, s) == 0) {
        lua_pushlstring(L, s, len); /* not a number (hex is not core-schema YAML) */
    }
}

static int parse_node(lua_State *L, parser_box *box, yaml_event_t *ev, int depth);

/* Consumes events up to the end of a mapping or sequence; pushes the table. */
static int parse_collection(lua_State *L, parser_box *box, int is_map, int depth)
{
    lua_newtable(L);
    lua_Integer n = 0;
    for (;;) {
        yaml_event_t ev;
        if (next_event(box, &ev) != 0)
            return -1;
        yaml_event_type_t type = ev.type;
        if (type == YAML_MAPPING_END_EVENT || type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        int rc = parse_node(L, box, &ev, depth + 1); /* deletes ev */
        if (rc != 0)
            return -1;
        if (!is_map) {
            lua_rawseti(L, -2, ++n);
            continue;
        }
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushliteral(L, ""); /* a null key: keep the entry under "" */
        }
        yaml_event_t vev;
        if (next_event(box, &vev) != 0 || parse_node(L, box, &vev, depth + 1) != 0)
            return -1;
        lua_rawset(L, -3);
    }
}

/* Pushes the value that starts with *ev (which it deletes). */
static int parse_node(lua_State *L, parser_box *box, yaml_event_t *ev, int depth)
{
    luaL_checkstack(L, 4, "yaml nesting");
    int rc = 0;
    if (depth > MAX_DEPTH) {
        snprintf(box->error, sizeof box->error, "yaml: nesting deeper than %d levels", MAX_DEPTH);
        rc = -1;
    } else if (ev->type == YAML_SCALAR_EVENT) {
        const char *s = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.tag == NULL)
            push_plain(L, s, len);
        else
            lua_pushlstring(L, s, len);
    } else if (ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT) {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        yaml_event_delete(ev);
        return parse_collection(L, box, is_map, depth);
    } else if (ev->type == YAML_ALIAS_EVENT) {
        snprintf(box->error, sizeof box->error, "yaml: aliases are not supported (line %zu)",
                 ev->start_mark.line + 1);
        rc = -1;
    } else {
        snprintf(box->error, sizeof box->error, "yaml: unexpected event at line %zu",
                 ev->start_mark.line + 1);
        rc = -1;
    }
    yaml_event_delete(ev);
    return rc;
}

/* Skips stream/document starts; pushes the first document's value (nil when empty). */
static int parse_document(lua_State *L, parser_box *box)
{
    for (;;) {
        yaml_event_t ev;
        if (next_event(box, &ev) != 0)
            return -1;
        yaml_event_type_t type = ev.type;
        if (type == YAML_STREAM_START_EVENT || type == YAML_DOCUMENT_START_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        if (type == YAML_STREAM_END_EVENT || type == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            lua_pushnil(L);
            return 0;
        }
        return parse_node(L, box, &ev, 0);
    }
}

/* yaml.decode(text) -> value   or   nil, message */
static int yaml_decode(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    lua_settop(L, 1);
    parser_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->ready = 0;
    box->error[0] = '\0';
    luaL_setmetatable(L, PARSER_META);
    if (!yaml_parser_initialize(&box->parser))
        return luaL_error(L, "yaml: cannot initialize the parser (out of memory)");
    box->ready = 1;
    yaml_parser_set_input_string(&box->parser, (const unsigned char *)text, len);
    int rc = parse_document(L, box);
    box->ready = 0;
    yaml_parser_delete(&box->parser);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, box->error);
        return 2;
    }
    return 1;
}

static const luaL_Reg yaml_funcs[] = {
    {"decode", yaml_decode},
    {NULL, NULL}
};

int luaopen_bosk_yaml(lua_State *L)
{
    luaL_newmetatable(L, PARSER_META);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, yaml_funcs);
    return 1;
}
