/*
 * record.c - record keys and metatables (see record.h).
 */
#include "record.h"

int dp_push_keys(lua_State *L)
{
	return lua_getfield(L, LUA_REGISTRYINDEX, DP_KEYS_REG);
}

void dp_record_meta(lua_State *L)
{
	lua_newtable(L);
	luaL_getmetatable(L, DP_RECORD_MT);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, -5);
	}
	lua_pop(L, 1);
	lua_newtable(L);
	lua_setfield(L, -2, "__order");
}

void dp_record_open(lua_State *L)
{
	static const char *const keys[] = {"name", "system", "comm", "pid", "cpu", "ts",
					   "flags", "payload", "fields", "stack", "lost_before",
					   "packet"};
	luaL_newmetatable(L, DP_RECORD_MT); /* __tostring comes from the Lua side */
	lua_createtable(L, DP_K_MAX, 1);
	lua_pushvalue(L, -2);
	lua_rawseti(L, -2, 0);
	for (int i = 1; i < DP_K_MAX; i++) {
		lua_pushstring(L, keys[i - 1]);
		lua_rawseti(L, -2, i);
	}
	lua_setfield(L, LUA_REGISTRYINDEX, DP_KEYS_REG);
	lua_setfield(L, -2, "Record");
}
