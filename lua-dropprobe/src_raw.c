/*
 * src_raw.c - records from an instance's per-CPU binary ring buffers
 * (rawbuf.c) through the record sink (recsink.c: each event decoded into
 * a record by the decoder with the kernel's formats), in timestamp order
 * across CPUs.
 */

/***
 * @submodule dropprobe.core
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tracefs.h>

#include "comm.h"
#include "core.h"
#include "util.h"
#include "decode.h"
#include "instance.h"
#include "rawbuf.h"
#include "recsink.h"
#include "source.h"

struct src_raw {
	struct dp_instance *inst; /* alive while own.instance holds it */
	struct dp_rawbuf rb;
	struct dp_decoder dec;
	struct dp_misses misses;
};

static int raw_fill(lua_State *L, void *src, struct dp_fill *f, int ms)
{
	struct src_raw *s = src;
	struct dp_recsink r;
	int n;
	dp_recsink_begin(L, &r, &s->dec, f, &s->misses, dp_instance_stacked(s->inst), 0);
	n = dp_rawbuf_feed(&s->rb, ms, &r.sink);
	dp_recsink_end(&r);
	return n < 0 ? DP_FILL_INTR : n == 0 ? DP_FILL_NONE : DP_FILL_DATA;
}

static int raw_fd(void *src)
{
	struct src_raw *s = src;
	return s->rb.ncpu ? s->rb.fds[0] : -1;
}

static void raw_stats(lua_State *L, void *src)
{
	struct src_raw *s = src;
	lua_pushinteger(L, s->dec.unknown);
	lua_setfield(L, -2, "unknown_events");
	lua_pushinteger(L, s->dec.filtered);
	lua_setfield(L, -2, "filtered");
	lua_pushinteger(L, s->rb.pages);
	lua_setfield(L, -2, "pages");
	lua_pushinteger(L, s->rb.mapped);
	lua_setfield(L, -2, "mapped");
}

static void raw_close(lua_State *L, void *src)
{
	struct src_raw *s = src;
	dp_decoder_free(L, &s->dec);
	dp_rawbuf_close(&s->rb); /* and the formats */
	dp_misses_free(&s->misses);
	free(s);
}

static const struct dp_source_ops raw_ops = {
	.mode = "raw",
	.fill = raw_fill,
	.fd = raw_fd,
	.stats = raw_stats,
	.close = raw_close,
	.max_wait_ms = 250, /* poll wakes only at buffer_percent: read partial pages */
};

/* The systems of opts.systems, NULL-terminated, into out (anchored in opts). */
static void systems_of(lua_State *L, int opts, const char **out, int max)
{
	int n = 0;
	if (lua_getfield(L, opts, "systems") == LUA_TTABLE) {
		for (int i = 1; n < max - 1; i++) {
			if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
				lua_pop(L, 1);
				break;
			}
			out[n++] = lua_tostring(L, -1);
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	out[n] = NULL;
}

static const char *raw_setup(lua_State *L, struct src_raw *s, int opts)
{
	const char *systems[64], *fail;
	lua_Integer pct = dp_opt_integer(L, opts, "buffer_percent", -1);
	systems_of(L, opts, systems, 64);
	fail = dp_rawbuf_open(&s->rb, s->inst->ti, systems, dp_tracing_dir_arg(),
			      dp_opt_boolean(L, opts, "map", 1));
	if (fail)
		return fail;
	/* a record names its addresses (a drop's location): the symbols are
	 * read now, not in the middle of the first burst of events */
	dp_ksyms_need(&s->rb.syms);
	lua_getfield(L, opts, "symbols");
	fail = dp_decoder_init(L, &s->dec, &s->rb.syms, 0, lua_istable(L, -1) ? lua_gettop(L) : 0);
	lua_pop(L, 1);
	if (fail)
		return fail;
	s->dec.want_port = (int)dp_opt_integer(L, opts, "port", -1);
	s->dec.flag_cols = (int)dp_opt_integer(L, opts, "flag_columns", 5);
	lua_getfield(L, opts, "hosts");
	dp_decoder_hosts(L, &s->dec, lua_gettop(L));
	lua_pop(L, 1);
	lua_getfield(L, opts, "match");
	dp_decoder_match(L, &s->dec, lua_gettop(L));
	lua_pop(L, 1);
	if (pct >= 0) {
		char v[16];
		snprintf(v, sizeof(v), "%d", (int)pct);
		if (tracefs_instance_file_write(s->inst->ti, "buffer_percent", v) < 0)
			return "cannot set buffer_percent";
	}
	return NULL;
}

/***
 * A Pipe over an instance's per-CPU binary buffers, decoded in C
 * (libtraceevent formats, kallsyms for symbols).
 * @function raw_pipe
 * @param inst an Instance
 * @tparam table opts `systems` (of the events used), `symbols`,
 *   `buffer_percent`, `grace`, `port`, `hosts`, `match` (a tcpdump filter
 *   expression on each drop's packet), `flag_columns`, `map` (false:
 *   copy every page out with read() even where the kernel lets the
 *   buffers be mapped; stats' `mapped` tells how many CPUs were)
 * @return a Pipe
 */
static int raw_pipe(lua_State *L)
{
	static const char *const opts[] = {"systems", "symbols", "buffer_percent", "grace",
					   "port", "hosts", "match", "flag_columns", "map", NULL};
	struct dp_instance *in = dp_check_instance(L, 1);
	struct src_raw *s;
	const char *fail;
	char msg[512];
	luaL_checktype(L, 2, LUA_TTABLE);
	dp_check_fields(L, 2, opts);
	lua_createtable(L, 0, 1);
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, "instance");
	s = calloc(1, sizeof(*s));
	if (!s)
		return luaL_error(L, "out of memory");
	s->inst = in;
	s->dec.cache_ref = LUA_NOREF;
	dp_pipe_new(L, &raw_ops, s, -1, dp_opt_number(L, 2, "grace", 0.1));
	errno = 0;
	fail = raw_setup(L, s, 2);
	if (fail) {
		int e = errno;
		snprintf(msg, sizeof(msg), "raw mode: %s%s%s", fail, e ? ": " : "",
			 e ? strerror(e) : "");
		return dp_pipe_fail(L, -1, msg);
	}
	dp_instance_adopt(L, 1, -1, DP_CHILD_READER, NULL);
	return 1;
}

void dp_src_raw_open(lua_State *L)
{
	lua_pushcfunction(L, raw_pipe);
	lua_setfield(L, -2, "raw_pipe");
}
