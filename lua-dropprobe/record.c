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

/* The kind of a stack's frame i (1-based), or -1 past its last frame. */
typedef int (*kind_fn)(void *ctx, int i);

struct table_frames {
	lua_State *L;
	int idx;
};

static int table_kind(void *ctx, int i)
{
	struct table_frames *t = ctx;
	size_t n;
	const char *f;
	int k = -1;
	if (lua_rawgeti(t->L, t->idx, i) == LUA_TSTRING) {
		f = lua_tolstring(t->L, -1, &n);
		k = frame_kind(f, n);
	}
	lua_pop(t->L, 1);
	return k;
}

/* How many frames at the top are the machinery or the freeing function
 * (dp_stack_skip's rule), the frames' kinds from kind. */
static int skip_of(kind_fn kind, void *ctx)
{
	int skip = 0, i;
	if (kind(ctx, 1) <= 0)
		return 0; /* starts at an ordinary frame: trimmed already (or empty) */
	/* past the last freeing function at the top (a frame between may be an
	 * ftrace trampoline that kallsyms names after a neighbour), then past
	 * the machinery that follows */
	for (i = 1; i <= DP_SKIP_FREEING; i++) {
		int k = kind(ctx, i);
		if (k < 0)
			break;
		if (k == 2)
			skip = i;
	}
	if (!skip) { /* no freeing function: the machinery at the top */
		while (kind(ctx, skip + 1) == 1 && skip < DP_SKIP_FREEING)
			skip++;
		return skip;
	}
	while (kind(ctx, skip + 1) == 1 && skip < DP_SKIP_MAX)
		skip++;
	return skip;
}

int dp_stack_skip(lua_State *L, int idx)
{
	struct table_frames t = {L, lua_absindex(L, idx)};
	return skip_of(table_kind, &t);
}

struct span_frames {
	const char *const *f;
	const size_t *n;
	int count;
};

static int span_kind(void *ctx, int i)
{
	struct span_frames *s = ctx;
	return i >= 1 && i <= s->count ? frame_kind(s->f[i - 1], s->n[i - 1]) : -1;
}

int dp_frames_skip(const char *const *f, const size_t *n, int count)
{
	struct span_frames s = {f, n, count};
	return skip_of(span_kind, &s);
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
