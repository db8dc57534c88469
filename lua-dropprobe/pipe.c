/*
 * pipe.c - dropprobe.Pipe: records one at a time, with a timeout. The read
 * loop only: take the next complete record from the joiner, else let the
 * source fill (waiting no longer than the deadline, the grace a record has
 * to wait for its stack, and the source's longest wait), and end on a
 * deadline, end of input or a signal. Where records come from is the
 * source's business (source.h).
 */

/***
 * @submodule dropprobe.core
 */
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "source.h"
#include "util.h"

/* uservalue slots of a Pipe */
#define UV_REFS 1 /* records waiting in the joiner */
#define UV_OWN 2  /* the source's own table */
/* after a signal, what the kernel buffered before it is still read, without
 * waiting, for at most this long however fast events come */
#define DRAIN_SECONDS 0.5

struct dp_pipe {
	const struct dp_source_ops *ops;
	void *src;
	struct dp_join join;
	double grace; /* seconds a record waits for its stack */
	double drain_until; /* after a signal: the buffer read until then (0: no drain) */
	int eof;
	int closed;
};

static struct dp_pipe *check_pipe(lua_State *L, int idx)
{
	struct dp_pipe *p = luaL_checkudata(L, idx, DP_PIPE_MT);
	if (p->closed)
		luaL_error(L, "attempt to use a closed pipe");
	return p;
}

static int fail2(lua_State *L, const char *why)
{
	luaL_pushfail(L);
	lua_pushstring(L, why);
	return 2;
}

/***
 * The next record, waiting at most `timeout` seconds (nil: waits). After a
 * caught SIGINT or SIGTERM (`catch_signals`) it waits no more: it returns
 * what the kernel had buffered (for at most half a second), then
 * "interrupted".
 * @function Pipe:read
 * @tparam[opt] number timeout
 * @treturn table|nil a record, or nil and "timeout", "eof" or "interrupted"
 */
static int read_next(lua_State *L, struct dp_pipe *p, double timeout)
{
	double deadline, last_data;
	struct dp_fill f;

	lua_settop(L, 2);
	lua_getiuservalue(L, 1, UV_REFS);
	f.refs = lua_gettop(L);
	if (dp_join_pop(L, &p->join, f.refs)) /* the common case: one is ready */
		return 1;
	deadline = timeout >= 0 ? dp_mono() + timeout : -1;
	last_data = dp_mono();
	dp_push_keys(L);
	f.keys = lua_gettop(L);
	lua_getiuservalue(L, 1, UV_OWN);
	f.own = lua_gettop(L);
	f.join = &p->join;
	for (;;) {
		int r, ms, waiting;
		double now;
		if (dp_join_pop(L, &p->join, f.refs))
			return 1;
		if (p->eof) {
			dp_join_release(&p->join);
			if (dp_join_pop(L, &p->join, f.refs))
				return 1;
			return fail2(L, "eof");
		}
		now = dp_mono();
		waiting = dp_join_waiting(&p->join);
		ms = deadline < 0 ? p->ops->max_wait_ms : (int)((deadline - now) * 1000) + 1;
		if (ms > p->ops->max_wait_ms)
			ms = p->ops->max_wait_ms;
		if (waiting) {
			int g = (int)((p->grace - (now - last_data)) * 1000) + 1;
			if (g < ms)
				ms = g;
		}
		if (dp_signal_caught && !p->drain_until)
			/* noticed before the buffers run dry: a storm that never
			 * pauses still ends in half a second */
			p->drain_until = now + DRAIN_SECONDS;
		if (ms < 0 || p->drain_until)
			ms = 0;
		if (p->drain_until && now >= p->drain_until) {
			p->drain_until = 0; /* a later read (the signal forgotten) waits again */
			return fail2(L, "interrupted");
		}
		r = p->ops->fill(L, p->src, &f, ms);
		if (r == DP_FILL_DATA) {
			last_data = dp_mono();
			continue;
		}
		if (r == DP_FILL_EOF) {
			p->eof = 1;
			continue;
		}
		if (p->drain_until) { /* all read: what waits for a stack goes too */
			dp_join_release(&p->join);
			if (dp_join_pop(L, &p->join, f.refs))
				return 1;
			p->drain_until = 0;
			return fail2(L, "interrupted");
		}
		if (r == DP_FILL_INTR) { /* (a caught signal starts the drain above) */
			p->drain_until = dp_mono() + DRAIN_SECONDS;
			continue;
		}
		now = dp_mono();
		if (waiting && now - last_data >= p->grace) {
			dp_join_release(&p->join); /* its stack did not come */
			continue;
		}
		if (deadline >= 0 && now >= deadline)
			return fail2(L, "timeout");
	}
}

static int pipe_read(lua_State *L)
{
	struct dp_pipe *p = check_pipe(L, 1);
	return read_next(L, p, luaL_optnumber(L, 2, -1));
}

/***
 * Internal: the iterator of a loop over every record, waiting as long as
 * it takes (`for rec in pipe._next, pipe do`): `Pipe:read()` that ignores
 * the loop's control value (the record before).
 * @function Pipe:_next
 * @treturn table|nil a record, or nil and "eof" or "interrupted"
 */
static int pipe_next(lua_State *L)
{
	struct dp_pipe *p = check_pipe(L, 1);
	return read_next(L, p, -1);
}

static void pipe_close_at(lua_State *L, struct dp_pipe *p, int idx)
{
	if (p->closed)
		return;
	p->closed = 1;
	if (p->src)
		p->ops->close(L, p->src);
	p->src = NULL;
	dp_join_free(&p->join);
	lua_pushnil(L);
	lua_setiuservalue(L, idx, UV_REFS); /* the records still held */
}

/***
 * Close it; idempotent; also `__close` and `__gc`.
 * @function Pipe:close
 */
static int pipe_close(lua_State *L)
{
	struct dp_pipe *p = luaL_checkudata(L, 1, DP_PIPE_MT);
	pipe_close_at(L, p, 1);
	return 0;
}

int dp_pipe_fail(lua_State *L, int idx, const char *msg)
{
	struct dp_pipe *p = luaL_checkudata(L, idx, DP_PIPE_MT);
	idx = lua_absindex(L, idx);
	lua_pushstring(L, msg); /* msg may live in what close frees */
	pipe_close_at(L, p, idx);
	return lua_error(L);
}

/***
 * The file descriptor to poll (text: trace_pipe; raw: CPU 0's buffer).
 * @function Pipe:fd
 * @treturn integer
 */
static int pipe_fd(lua_State *L)
{
	struct dp_pipe *p = check_pipe(L, 1);
	lua_pushinteger(L, p->ops->fd ? p->ops->fd(p->src) : -1);
	return 1;
}

/***
 * Internal: the counts the reader saw itself (records, lines, lost events it
 * was told of); `Pipe:stats` adds the kernel's per-CPU overrun and dropped
 * counts.
 * @function Pipe:_stats
 * @treturn table
 */
static int pipe_stats(lua_State *L)
{
	struct dp_pipe *p = luaL_checkudata(L, 1, DP_PIPE_MT);
	lua_createtable(L, 0, 10);
	lua_pushstring(L, p->ops->mode);
	lua_setfield(L, -2, "mode");
	dp_join_stats(L, &p->join);
	if (p->src && p->ops->stats)
		p->ops->stats(L, p->src);
	return 1;
}

static int pipe_tostring(lua_State *L)
{
	struct dp_pipe *p = luaL_checkudata(L, 1, DP_PIPE_MT);
	if (p->closed)
		lua_pushfstring(L, DP_PIPE_MT " %s (closed)", p->ops->mode);
	else
		lua_pushfstring(L, DP_PIPE_MT " %s (%I records read)", p->ops->mode,
				(lua_Integer)p->join.nread);
	return 1;
}

/***
 * The instance it reads (nil for files).
 * @function Pipe:instance
 */
static int pipe_instance(lua_State *L)
{
	luaL_checkudata(L, 1, DP_PIPE_MT);
	if (lua_getiuservalue(L, 1, UV_OWN) != LUA_TTABLE)
		return 0;
	lua_getfield(L, -1, "instance");
	return 1;
}

void dp_pipe_new(lua_State *L, const struct dp_source_ops *ops, void *src, int own,
		 double grace)
{
	struct dp_pipe *p;
	own = lua_absindex(L, own);
	p = lua_newuserdatauv(L, sizeof(*p), 2);
	memset(p, 0, sizeof(*p));
	p->ops = ops;
	p->src = src;
	p->grace = grace;
	dp_join_init(&p->join);
	luaL_setmetatable(L, DP_PIPE_MT);
	lua_newtable(L);
	lua_setiuservalue(L, -2, UV_REFS);
	lua_pushvalue(L, own);
	lua_setiuservalue(L, -2, UV_OWN);
}

/***
 * Internal: stacks as the kernel gave them (the tracing machinery's frames
 * at the top kept), for scripts that want them (`raw_stacks`).
 * @function Pipe:_raw_stacks
 * @tparam boolean on
 */
static int pipe_raw_stacks(lua_State *L)
{
	struct dp_pipe *p = luaL_checkudata(L, 1, DP_PIPE_MT);
	p->join.raw_stacks = lua_toboolean(L, 2);
	return 0;
}

static const luaL_Reg pipe_methods[] = {
	{"instance", pipe_instance},
	{"_raw_stacks", pipe_raw_stacks},
	{"read", pipe_read},
	{"_next", pipe_next},
	{"close", pipe_close},
	{"fd", pipe_fd},
	{"_stats", pipe_stats},
	{NULL, NULL},
};

static const luaL_Reg pipe_meta[] = {
	{"__gc", pipe_close},
	{"__close", pipe_close},
	{"__tostring", pipe_tostring},
	{NULL, NULL},
};

void dp_pipe_open(lua_State *L)
{
	luaL_newmetatable(L, DP_PIPE_MT);
	luaL_setfuncs(L, pipe_meta, 0);
	luaL_newlib(L, pipe_methods);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, -3, "Pipe");
	lua_pop(L, 1);
}
