/*
 * record.c - record keys and metatables (see record.h).
 */

/***
 * @submodule dropprobe.core
 */
#include "record.h"

#include <string.h>

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

/* Whether a frame ("fn+0xoff/0xsize") is the tracing machinery above a
 * drop (trace_event_raw_event_*, a kprobe's handlers, a bare address):
 * kind 1; or the function that freed the packet (kfree_skb,
 * kfree_skb_reason, sk_skb_reason_drop and their like): kind 2; else 0. */
static int frame_kind(const char *f, size_t n)
{
	static const struct {
		const char *s;
		size_t n;
	} pre[] = {{"trace_", 6}, {"__traceiter", 11}, {"perf_trace", 10}, {"kprobe", 6},
		   {"aggr_", 5}, {"ftrace", 6}, {"0x", 2}};
	const char *plus = memchr(f, '+', n);
	size_t fn = plus ? (size_t)(plus - f) : n, hex = 0;
	if (memmem(f, fn, "kfree_skb", 9) || memmem(f, fn, "reason_drop", 11))
		return 2;
	while (hex < fn && ((f[hex] >= '0' && f[hex] <= '9') || (f[hex] >= 'a' && f[hex] <= 'f')))
		hex++;
	if (hex == fn && fn > 0)
		return 1; /* a bare address */
	for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++)
		if (n >= pre[i].n && memcmp(f, pre[i].s, pre[i].n) == 0)
			return 1;
	return 0;
}

/* The kind of frame i (1-based) of count, or -1 past the last. */
static inline int kind_at(const char *const *f, const size_t *n, int count, int i)
{
	return i <= count ? frame_kind(f[i - 1], n[i - 1]) : -1;
}

int dp_frames_skip(const char *const *f, const size_t *n, int count)
{
	int skip = 0, limit;
	if (kind_at(f, n, count, 1) <= 0)
		return 0; /* starts at an ordinary frame: trimmed already (or empty) */
	/* past the last freeing function at the top (a frame between may be an
	 * ftrace trampoline that kallsyms names after a neighbour), then past
	 * the machinery that follows; without one, the machinery at the top */
	for (int i = 1; i <= DP_SKIP_FREEING; i++) {
		int k = kind_at(f, n, count, i);
		if (k < 0)
			break;
		if (k == 2)
			skip = i;
	}
	limit = skip ? DP_SKIP_MAX : DP_SKIP_FREEING;
	while (skip < limit && kind_at(f, n, count, skip + 1) == 1)
		skip++;
	return skip;
}

int dp_stack_skip(lua_State *L, int idx)
{
	const char *f[DP_SKIP_MAX];
	size_t n[DP_SKIP_MAX];
	int count = 0, skip;
	idx = lua_absindex(L, idx);
	luaL_checkstack(L, DP_SKIP_MAX, "stack frames");
	/* the first frames, up to the first that is no string; kept on the
	 * Lua stack while the rule reads them */
	while (count < DP_SKIP_MAX && lua_rawgeti(L, idx, count + 1) == LUA_TSTRING) {
		f[count] = lua_tolstring(L, -1, &n[count]);
		count++;
	}
	skip = dp_frames_skip(f, n, count);
	lua_pop(L, count < DP_SKIP_MAX ? count + 1 : count); /* and what ended the loop */
	return skip;
}

void dp_stack_trim(lua_State *L, int idx)
{
	int skip, n;
	idx = lua_absindex(L, idx);
	skip = dp_stack_skip(L, idx);
	if (!skip)
		return;
	n = (int)lua_rawlen(L, idx);
	for (int i = 1; i + skip <= n; i++) {
		lua_rawgeti(L, idx, i + skip);
		lua_rawseti(L, idx, i);
	}
	for (int i = n - skip + 1; i <= n; i++) {
		lua_pushnil(L);
		lua_rawseti(L, idx, i);
	}
}

/***
 * A drop's stack from the function that dropped it (`record.c`): the tracing
 * machinery and the freeing function at the top left out, the one rule every
 * record's stack follows (unless `raw_stacks`) and `dropprobe.hist` applies
 * to counted stacks.
 * @function drop_frames
 * @tparam {string,...} stack frames as `fn+0xoff/0xsize`
 * @tparam[opt] integer depth at most this many frames
 * @treturn {string,...} a new table
 */
static int drop_frames(lua_State *L)
{
	lua_Integer depth = luaL_optinteger(L, 2, -1);
	int skip, n, k = 0;
	luaL_checktype(L, 1, LUA_TTABLE);
	skip = dp_stack_skip(L, 1);
	n = (int)lua_rawlen(L, 1);
	lua_createtable(L, n > skip ? n - skip : 0, 0);
	for (int i = skip + 1; i <= n && (depth < 0 || k < depth); i++) {
		lua_rawgeti(L, 1, i);
		lua_rawseti(L, -2, ++k);
	}
	return 1;
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
	lua_pushcfunction(L, drop_frames);
	lua_setfield(L, -2, "drop_frames");
}
