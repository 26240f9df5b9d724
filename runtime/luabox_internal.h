/* What the files of the Lua sandbox share (luabox.c, luabox_lib.c, luabox_pattern.c): how a
 * C function reachable from a sandboxed script counts its work against the running call's
 * budget. Loop thread. */
#ifndef SPRIG_LUABOX_INTERNAL_H
#define SPRIG_LUABOX_INTERNAL_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

/* Adds `units` of work done by a C function of the sandbox to the running call's budget.
 * A unit is about one Lua VM instruction (a few ns): copying or scanning 16 bytes, one
 * step of a pattern matcher, one element moved. When the call is over its instruction or
 * time budget the call is marked expired (so the script cannot go on, whatever it
 * catches) and this raises "NAME:LINE: WHAT (over budget)", or "(over N ms)" when it was
 * the time, at the line of the Lua function that called the C function: it does not
 * return then. Outside a budgeted call it only counts. */
void luabox__charge(lua_State *L, size_t units, const char *what);

/* Bytes L's box may still allocate. */
size_t luabox__mem_left(lua_State *L);

/* True while the running call of L's box is over its budget. */
bool luabox__expired(lua_State *L);

/* True when the coroutine co was stopped by its budget inside the count hook, where Lua
 * leaves hooks off for it: its to-be-closed variables must not be closed. */
bool luabox__stopped_thread(lua_State *co);

/* Replaces the whitelisted libraries' C functions whose work is not O(1) by counted or
 * bounded versions (luabox_lib.c). Expects the libraries opened; leaves the stack as it
 * was. */
void luabox__guard_libs(lua_State *L);

/* Replaces string.find, match, gmatch and gsub by the sandbox's own pattern matcher, which
 * counts its steps (luabox_pattern.c). Expects the string library opened; leaves the stack
 * as it was. */
void luabox__open_patterns(lua_State *L);

#endif
