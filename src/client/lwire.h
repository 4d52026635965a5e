/* lwire.h: the compact Resource decoder of lwire.c, for other C modules
 * (lhttp.c decodes an /acquire answer without first copying its body
 * into a Lua string). */
#ifndef BOSK_LWIRE_H
#define BOSK_LWIRE_H

#include <stddef.h>
#include <lua.h>

/* Pushes the resource read from text[0..len) when it is exactly Go's
 * compact form (lwire.c's opening comment) and returns 1; otherwise
 * pushes nothing and returns 0. userdata_mt: the stack index of the
 * UserData metatable (an absolute index). */
int lwire_push_resource(lua_State *L, const char *text, size_t len, int userdata_mt);

#endif
