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

#include <event-parse.h>
#include <trace-cmd.h>

#include "core.h"
#include "util.h"
#include "decode.h"
#include "source.h"

#define DAT_BATCH 512

struct src_dat {
	struct tracecmd_input *top;
	struct tracecmd_input **inputs; /* top, then its instance buffers */
	int ninputs, cur;
	struct dp_decoder dec;
};

struct dat_ctx {
	lua_State *L;
	struct src_dat *s;
	struct dp_fill *f;
	int base, n;
};

static int dat_record(struct tracecmd_input *h, struct tep_record *rec, int cpu, void *data)
{
	struct dat_ctx *c = data;
	int k;
	(void)h;
	if (cpu < 0 || cpu > 65535)
		return 0;
	if (rec->missed_events)
		dp_join_lost(c->L, c->f->join, cpu, rec->missed_events);
	k = dp_decode(c->L, &c->s->dec, c->base, c->f->keys, cpu, rec->data, rec->size, rec->ts);
	if (k == DP_DEC_RECORD)
		dp_join_record(c->L, c->f->join, c->f->refs, c->f->keys, cpu, 1);
	else if (k == DP_DEC_STACK)
		dp_join_stack(c->L, c->f->join, c->f->refs, c->f->keys, cpu);
	return ++c->n >= DAT_BATCH; /* stop here; the next call goes on */
}

static int dat_fill(lua_State *L, void *src, struct dp_fill *f, int ms)
{
	struct src_dat *s = src;
	struct dat_ctx c = {.L = L, .s = s, .f = f};
	(void)ms;
	c.base = dp_decode_begin(L, &s->dec);
	while (s->cur < s->ninputs) {
		c.n = 0;
		tracecmd_iterate_events(s->inputs[s->cur], NULL, 0, dat_record, &c);
		if (c.n > 0)
			break;
		s->cur++;
	}
	dp_decode_end(L);
	return c.n > 0 ? DP_FILL_DATA : DP_FILL_EOF;
}

static void dat_stats(lua_State *L, void *src)
{
	lua_pushinteger(L, ((struct src_dat *)src)->dec.unknown);
	lua_setfield(L, -2, "unknown_events");
}

static void dat_close(lua_State *L, void *src)
{
	struct src_dat *s = src;
	dp_decoder_free(L, &s->dec); /* the tep is the file's: tracecmd_close frees it */
	for (int i = s->ninputs - 1; i >= 1; i--)
		tracecmd_close(s->inputs[i]);
	if (s->top)
		tracecmd_close(s->top);
	free(s->inputs);
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
	struct tep_handle *tep;
	int n;
	errno = 0;
	s->top = tracecmd_open(path, 0);
	if (!s->top)
		return errno ? strerror(errno) : "not a trace.dat libtracecmd can read";
	n = tracecmd_buffer_instances(s->top);
	s->inputs = calloc((size_t)(n > 0 ? n : 0) + 1, sizeof(*s->inputs));
	if (!s->inputs)
		return "out of memory";
	s->inputs[s->ninputs++] = s->top;
	for (int i = 0; i < n; i++) {
		struct tracecmd_input *h = tracecmd_buffer_instance_handle(s->top, i);
		if (h)
			s->inputs[s->ninputs++] = h;
	}
	tep = tracecmd_get_tep(s->top);
	if (!tep)
		return "no event formats in the file";
	if (tep_get_cpus(tep) <= 0 || tep_get_cpus(tep) > 65536)
		return "bad CPU count";
	{
		const char *fail = dp_decoder_init(L, &s->dec, tep, 0, 0);
		s->dec.from_file = 1;
		return fail;
	}
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
