/*
 * dat.c - trace.dat files written by `trace-cmd record`/`extract`, read
 * through libtracecmd and decoded by the same code as live raw mode, so a
 * recording from another host goes through the same recipes. The top-level
 * buffer and every instance buffer of the file are read, one after another.
 */
#include "raw.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event-parse.h>
#include <trace-cmd.h>

#define DAT_BATCH 512

struct dp_dat {
	struct tracecmd_input *top;
	struct tracecmd_input **inputs; /* top, then its instance buffers */
	int ninputs;
	int cur;
};

struct dat_ctx {
	lua_State *L;
	struct dp_pipe *p;
	struct dp_raw *r;
	int refs, cache, n;
};

void dp_dat_close(struct dp_raw *r)
{
	struct dp_dat *d = r->dat;
	if (!d)
		return;
	for (int i = d->ninputs - 1; i >= 1; i--)
		tracecmd_close(d->inputs[i]);
	if (d->top)
		tracecmd_close(d->top);
	free(d->inputs);
	free(d);
	r->dat = NULL;
	r->tep = NULL; /* was the file's */
}

static int dat_record(struct tracecmd_input *h, struct tep_record *rec, int cpu, void *data)
{
	struct dat_ctx *c = data;
	struct dp_pipe *p = c->p;
	(void)h;
	if (cpu < 0 || cpu >= c->r->ncpu)
		return 0;
	dp_pipe_cpus(c->L, p, cpu);
	if (rec->missed_events)
		dp_pipe_lost(c->L, p, cpu, rec->missed_events);
	dp_raw_decode(c->L, p, c->r, c->refs, c->cache, cpu, rec->data, rec->size, rec->ts);
	return ++c->n >= DAT_BATCH; /* stop here; the next call goes on */
}

int dp_dat_fill(lua_State *L, struct dp_pipe *p, int refs)
{
	struct dp_raw *r = p->raw;
	struct dp_dat *d = r ? r->dat : NULL;
	struct dat_ctx c = {.L = L, .p = p, .r = r, .refs = refs};
	if (!d)
		return 0;
	c.cache = dp_raw_push_cache(L, r);
	while (d->cur < d->ninputs) {
		c.n = 0;
		tracecmd_iterate_events(d->inputs[d->cur], NULL, 0, dat_record, &c);
		if (c.n > 0)
			break;
		d->cur++;
	}
	lua_pop(L, 4);
	return c.n > 0;
}

/* core.open_dat(path) -> Pipe over a trace.dat file */
static int dat_open(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct dp_pipe *p = dp_pipe_alloc(L, DP_MODE_DAT);
	struct dp_raw *r = calloc(1, sizeof(*r));
	struct dp_dat *d = calloc(1, sizeof(*d));
	const char *fail = NULL;
	int n;
	if (!r || !d) {
		free(r);
		free(d);
		return luaL_error(L, "out of memory");
	}
	r->cache_ref = LUA_NOREF;
	r->dat = d;
	p->raw = r;
	errno = 0;
	d->top = tracecmd_open(path, 0);
	if (!d->top) {
		int e = errno;
		dp_raw_free(r);
		p->raw = NULL;
		return luaL_error(L, "cannot read trace.dat '%s'%s%s", path, e ? ": " : "",
				  e ? strerror(e) : "");
	}
	n = tracecmd_buffer_instances(d->top);
	d->inputs = calloc((size_t)(n > 0 ? n : 0) + 1, sizeof(*d->inputs));
	if (!d->inputs) {
		fail = "out of memory";
		goto error;
	}
	d->inputs[d->ninputs++] = d->top;
	for (int i = 0; i < n; i++) {
		struct tracecmd_input *h = tracecmd_buffer_instance_handle(d->top, i);
		if (h)
			d->inputs[d->ninputs++] = h;
	}
	r->tep = tracecmd_get_tep(d->top);
	if (!r->tep) {
		fail = "no event formats in the file";
		goto error;
	}
	fail = dp_raw_init_tep(r);
	if (fail)
		goto error;
	r->ncpu = tep_get_cpus(r->tep);
	if (r->ncpu <= 0 || r->ncpu > 65536) {
		fail = "bad CPU count";
		goto error;
	}
	r->nread_cpu = calloc((size_t)r->ncpu, sizeof(long long));
	if (!r->nread_cpu) {
		fail = "out of memory";
		goto error;
	}
	dp_raw_new_cache(L, r);
	dp_pipe_cpus(L, p, r->ncpu - 1);
	p->closed = 0;
	return 1;
error:
	dp_raw_free(r);
	p->raw = NULL;
	return luaL_error(L, "cannot read trace.dat '%s': %s", path, fail);
}

void dp_dat_open(lua_State *L)
{
	lua_pushcfunction(L, dat_open);
	lua_setfield(L, -2, "open_dat");
}
