/*
 * src_dat.c - records from a trace.dat file written by `trace-cmd record`
 * or `extract`, read through libtracecmd and decoded by the same decoder
 * as live raw mode with the file's own formats, so a recording from
 * another host goes through the same recipes and prints as it was. The
 * top-level buffer and every instance buffer of the file are read, one
 * after another.
 */

/***
 * @submodule dropprobe.core
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "util.h"
#include "datin.h"
#include "decode.h"
#include "recsink.h"
#include "source.h"

#define DAT_BATCH 512

struct src_dat {
	struct dp_datin in;
	struct dp_decoder dec;
};

static int dat_fill(lua_State *L, void *src, struct dp_fill *f, int ms)
{
	struct src_dat *s = src;
	struct dp_recsink r;
	long n;
	(void)ms;
	/* every record may get a stack from the entry after it */
	dp_recsink_begin(L, &r, &s->dec, f, NULL, 1, DAT_BATCH);
	n = dp_datin_feed(&s->in, &r.sink);
	dp_recsink_end(&r);
	return n > 0 ? DP_FILL_DATA : DP_FILL_EOF;
}

static void dat_stats(lua_State *L, void *src)
{
	lua_pushinteger(L, ((struct src_dat *)src)->dec.unknown);
	lua_setfield(L, -2, "unknown_events");
}

static void dat_close(lua_State *L, void *src)
{
	struct src_dat *s = src;
	dp_decoder_free(L, &s->dec); /* the tep is the file's: dp_datin_close frees it */
	dp_datin_close(&s->in);
	free(s);
}

static const struct dp_source_ops dat_ops = {
	.mode = "trace.dat",
	.fill = dat_fill,
	.fd = NULL,
	.stats = dat_stats,
	.close = dat_close,
	.max_wait_ms = 0,
};

static const char *dat_setup(lua_State *L, struct src_dat *s, const char *path)
{
	const char *fail = dp_datin_open(&s->in, path);
	if (fail)
		return fail;
	fail = dp_decoder_init(L, &s->dec, &s->in.syms, 0, 0);
	s->dec.from_file = 1;
	return fail;
}

/***
 * A Pipe over a trace.dat file (libtracecmd), the records of every CPU in
 * time order.
 * @function open_dat
 * @tparam string path
 * @return a Pipe
 */
static int open_dat(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct src_dat *s = calloc(1, sizeof(*s));
	const char *fail;
	char msg[4300];
	if (!s)
		return luaL_error(L, "out of memory");
	s->dec.cache_ref = LUA_NOREF;
	lua_newtable(L);
	dp_pipe_new(L, &dat_ops, s, -1, 0);
	fail = dat_setup(L, s, path);
	if (fail) {
		snprintf(msg, sizeof(msg), "cannot read trace.dat '%s': %s", path, fail);
		return dp_pipe_fail(L, -1, msg);
	}
	return 1;
}

void dp_src_dat_open(lua_State *L)
{
	lua_pushcfunction(L, open_dat);
	lua_setfield(L, -2, "open_dat");
}
