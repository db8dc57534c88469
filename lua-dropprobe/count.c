/*
 * count.c - dropprobe.Counter: counting events in C, keyed by fields of
 * one event (and its stack), the way a kernel hist trigger counts, for
 * kernels without hist triggers and for saved traces. Each event is read
 * straight from the binary buffer into a C hash table: no Lua value per
 * event. A stack key hashes the raw address array (the stacktrace
 * trigger's ftrace:kernel_stack entry that follows the event on its CPU)
 * and is symbolized once per distinct stack, when rows are asked for.
 *
 * Sources: an instance's per-CPU buffers (rawbuf.c), read on poll(); or a
 * trace.dat (libtracecmd), read whole on open.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event-parse.h>
#include <trace-cmd.h>
#include <tracefs.h>

#include "core.h"
#include "instance.h"
#include "rawbuf.h"

#define DP_COUNTER_MT "dropprobe.Counter"
#define MAXK 4 /* key fields */
#define MAXV 4 /* summed fields */
#define MAXFRAMES 128

enum { HOW_NUM, HOW_SYM, HOW_SYM_OFFSET };

struct centry {
	uint64_t k[MAXK];
	uint32_t stack; /* 0: none, else index + 1 in stacks */
	uint32_t used;
	uint64_t hits;
	uint64_t sum[MAXV];
};

struct cstack {
	uint64_t hash;
	int n;
	uint64_t *addr;
};

struct pend {
	int waiting;
	uint64_t k[MAXK];
	uint64_t v[MAXV];
};

struct counter {
	int closed;
	struct dp_instance *inst; /* live source, or NULL */
	struct dp_rawbuf rb;
	struct tracecmd_input *dat;
	struct tep_handle *tep;
	int event_id;
	int nk, nv, stack_key;
	struct tep_format_field *kf[MAXK], *vf[MAXV];
	int how[MAXK];
	char kname[MAXK][64], vname[MAXV][64];
	int stack_id;
	struct tep_format_field *stack_size, *stack_caller;
	struct centry *tab;
	size_t cap, n, max;
	struct cstack *stacks;
	size_t nstacks, capstacks;
	struct pend *pend; /* per CPU, for a stack key */
	int npend;
	long long hits, dropped, lost, other, nostack;
};

static struct counter *check_counter(lua_State *L, int idx)
{
	struct counter *c = luaL_checkudata(L, idx, DP_COUNTER_MT);
	if (c->closed)
		luaL_error(L, "attempt to use a closed counter");
	return c;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

static int grow(struct counter *c)
{
	size_t ncap = c->cap ? c->cap * 2 : 1024;
	struct centry *nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return -1;
	for (size_t i = 0; i < c->cap; i++) {
		struct centry *e = &c->tab[i];
		uint64_t h = e->stack;
		size_t j;
		if (!e->used)
			continue;
		for (int k = 0; k < c->nk; k++)
			h = mix(h, e->k[k]);
		for (j = h & (ncap - 1); nt[j].used; j = (j + 1) & (ncap - 1))
			;
		nt[j] = *e;
	}
	free(c->tab);
	c->tab = nt;
	c->cap = ncap;
	return 0;
}

static void add(struct counter *c, const uint64_t *k, uint32_t stack, const uint64_t *v)
{
	uint64_t h = stack;
	size_t j;
	c->hits++;
	if ((!c->cap || ((c->n + 1) * 2 > c->cap && c->n < c->max)) && grow(c) < 0 && !c->cap) {
		c->dropped++;
		return;
	}
	for (int i = 0; i < c->nk; i++)
		h = mix(h, k[i]);
	/* never more than half full: the probe ends at a free slot */
	for (j = h & (c->cap - 1); c->tab[j].used; j = (j + 1) & (c->cap - 1)) {
		struct centry *e = &c->tab[j];
		if (e->stack == stack && memcmp(e->k, k, sizeof(uint64_t) * (size_t)c->nk) == 0)
			goto found;
	}
	if (c->n >= c->max || (c->n + 1) * 2 > c->cap) { /* full: dropped, as the kernel counts it */
		c->dropped++;
		return;
	}
	c->tab[j].used = 1;
	memcpy(c->tab[j].k, k, sizeof(uint64_t) * (size_t)c->nk);
	c->tab[j].stack = stack;
	c->n++;
found:
	c->tab[j].hits++;
	for (int i = 0; i < c->nv; i++)
		c->tab[j].sum[i] += v[i];
}

/* The id of a stack (its frames interned once). */
static uint32_t stack_of(struct counter *c, const uint64_t *a, int n)
{
	uint64_t h = (uint64_t)n;
	for (int i = 0; i < n; i++)
		h = mix(h, a[i]);
	for (size_t i = 0; i < c->nstacks; i++)
		if (c->stacks[i].hash == h && c->stacks[i].n == n &&
		    memcmp(c->stacks[i].addr, a, sizeof(uint64_t) * (size_t)n) == 0)
			return (uint32_t)i + 1;
	if (c->nstacks == c->capstacks) {
		size_t nc = c->capstacks ? c->capstacks * 2 : 64;
		struct cstack *ns = realloc(c->stacks, sizeof(*ns) * nc);
		if (!ns)
			return 0;
		c->stacks = ns;
		c->capstacks = nc;
	}
	c->stacks[c->nstacks].hash = h;
	c->stacks[c->nstacks].n = n;
	c->stacks[c->nstacks].addr = malloc(sizeof(uint64_t) * (size_t)(n ? n : 1));
	if (!c->stacks[c->nstacks].addr)
		return 0;
	memcpy(c->stacks[c->nstacks].addr, a, sizeof(uint64_t) * (size_t)n);
	return (uint32_t)++c->nstacks;
}

static uint64_t num(struct tep_format_field *f, void *data, int size)
{
	unsigned long long v = 0;
	if (f->offset + f->size > size)
		return 0;
	tep_read_number_field(f, data, &v);
	return v;
}

static int pend_room(struct counter *c, int cpu)
{
	if (cpu < 0 || cpu > 65535)
		return -1;
	if (cpu >= c->npend) {
		int n = c->npend ? c->npend : 8;
		struct pend *np;
		while (n <= cpu)
			n *= 2;
		np = realloc(c->pend, sizeof(*np) * (size_t)n);
		if (!np)
			return -1;
		memset(np + c->npend, 0, sizeof(*np) * (size_t)(n - c->npend));
		c->pend = np;
		c->npend = n;
	}
	return 0;
}

/* The event waiting on cpu for its stack is counted without one. */
static void flush_cpu(struct counter *c, int cpu)
{
	if (cpu < c->npend && c->pend[cpu].waiting) {
		c->pend[cpu].waiting = 0;
		c->nostack++;
		add(c, c->pend[cpu].k, 0, c->pend[cpu].v);
	}
}

static void flush_all(struct counter *c)
{
	for (int cpu = 0; cpu < c->npend; cpu++)
		flush_cpu(c, cpu);
}

/* One event from any source. */
static void count_event(struct counter *c, int cpu, void *data, int size)
{
	struct tep_record rec;
	uint64_t k[MAXK] = {0}, v[MAXV] = {0};
	int id;
	memset(&rec, 0, sizeof(rec));
	rec.data = data;
	rec.size = size;
	if (size < 2)
		return;
	id = tep_data_type(c->tep, &rec);
	if (c->stack_key && id == c->stack_id && c->stack_caller) {
		uint64_t a[MAXFRAMES];
		long long n;
		int off = c->stack_caller->offset, m = 0;
		if (pend_room(c, cpu) < 0 || !c->pend[cpu].waiting)
			return; /* a stack of no counted event */
		n = (long long)num(c->stack_size, data, size);
		if (n < 0 || off + n * 8 > size)
			n = (size - off) / 8;
		for (long long i = 0; i < n && m < MAXFRAMES; i++) {
			memcpy(&a[m], (char *)data + off + i * 8, 8);
			if (!a[m])
				break;
			m++;
		}
		c->pend[cpu].waiting = 0;
		add(c, c->pend[cpu].k, stack_of(c, a, m), c->pend[cpu].v);
		return;
	}
	if (id != c->event_id) {
		c->other++;
		if (c->stack_key)
			flush_cpu(c, cpu); /* the CPU moved on: no stack came */
		return;
	}
	for (int i = 0; i < c->nk; i++)
		k[i] = num(c->kf[i], data, size);
	for (int i = 0; i < c->nv; i++)
		v[i] = num(c->vf[i], data, size);
	if (!c->stack_key) {
		add(c, k, 0, v);
		return;
	}
	if (pend_room(c, cpu) < 0)
		return;
	flush_cpu(c, cpu);
	memcpy(c->pend[cpu].k, k, sizeof(k));
	memcpy(c->pend[cpu].v, v, sizeof(v));
	c->pend[cpu].waiting = 1;
}

/* Read what the live buffers have (waiting up to ms); events seen, -1 on a signal. */
static long long poll_live(struct counter *c, int ms)
{
	long long before = c->hits + c->other;
	int cpu, size, r = dp_rawbuf_load(&c->rb, ms);
	unsigned long long ts;
	void *data;
	for (int i = 0; i < c->rb.ncpu; i++) {
		c->lost += c->rb.missed[i];
		c->rb.missed[i] = 0;
	}
	if (r < 0)
		return -1;
	while (dp_rawbuf_next(&c->rb, &cpu, &data, &size, &ts))
		count_event(c, cpu, data, size);
	return c->hits + c->other - before;
}

/* counter:poll([ms]) -> events read (what the buffers had, waiting up
 * to ms when nothing), or nil, "interrupted" */
static int counter_poll(lua_State *L)
{
	struct counter *c = check_counter(L, 1);
	int ms = (int)luaL_optinteger(L, 2, 0);
	long long n;
	if (!c->inst) {
		lua_pushinteger(L, 0);
		return 1;
	}
	n = poll_live(c, ms < 0 ? 0 : ms);
	if (n < 0 || dp_signal_caught) {
		luaL_pushfail(L);
		lua_pushliteral(L, "interrupted");
		return 2;
	}
	lua_pushinteger(L, n);
	return 1;
}

static void push_sym(lua_State *L, struct counter *c, uint64_t a, int offset)
{
	const char *name;
	unsigned long long start;
	unsigned long size;
	char buf[512];
	if (a && tep_find_function_info(c->tep, a, &name, &start, &size) && name) {
		if (!offset)
			snprintf(buf, sizeof(buf), "%s", name);
		else if (size)
			snprintf(buf, sizeof(buf), "%s+0x%llx/0x%lx", name, a - start, size);
		else
			snprintf(buf, sizeof(buf), "%s+0x%llx", name, a - start);
	} else {
		snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)a);
	}
	lua_pushstring(L, buf);
}

/* counter:rows() -> { {key = value, ..., stack = {...}, hitcount = n, <value> = sum}... },
 * { hits =, entries =, dropped =, lost =, without_stack = } */
static int counter_rows(lua_State *L)
{
	struct counter *c = check_counter(L, 1);
	int r = 0;
	if (c->inst)
		poll_live(c, 0); /* what is there now */
	flush_all(c);
	lua_createtable(L, (int)c->n, 0);
	lua_createtable(L, 0, (int)c->nstacks); /* stack id -> frames, made once */
	for (size_t i = 0; i < c->cap; i++) {
		struct centry *e = &c->tab[i];
		if (!e->used)
			continue;
		lua_createtable(L, 0, c->nk + c->nv + 2);
		for (int k = 0; k < c->nk; k++) {
			if (c->how[k] == HOW_NUM) {
				if (e->k[k] > (uint64_t)INT64_MAX)
					lua_pushnumber(L, (lua_Number)e->k[k]);
				else
					lua_pushinteger(L, (lua_Integer)e->k[k]);
			} else {
				push_sym(L, c, e->k[k], c->how[k] == HOW_SYM_OFFSET);
			}
			lua_setfield(L, -2, c->kname[k]);
		}
		if (c->stack_key) {
			if (e->stack) {
				if (lua_rawgeti(L, -2, e->stack) == LUA_TNIL) {
					struct cstack *s = &c->stacks[e->stack - 1];
					lua_pop(L, 1);
					lua_createtable(L, s->n, 0);
					for (int f = 0; f < s->n; f++) {
						push_sym(L, c, s->addr[f], 1);
						lua_rawseti(L, -2, f + 1);
					}
					lua_pushvalue(L, -1);
					lua_rawseti(L, -4, e->stack);
				}
				lua_setfield(L, -2, "stack");
			}
		}
		lua_pushinteger(L, (lua_Integer)e->hits);
		lua_setfield(L, -2, "hitcount");
		for (int v = 0; v < c->nv; v++) {
			lua_pushinteger(L, (lua_Integer)e->sum[v]);
			lua_setfield(L, -2, c->vname[v]);
		}
		lua_rawseti(L, -3, ++r);
	}
	lua_pop(L, 1);
	lua_createtable(L, 0, 5);
	lua_pushinteger(L, c->hits);
	lua_setfield(L, -2, "hits");
	lua_pushinteger(L, (lua_Integer)c->n);
	lua_setfield(L, -2, "entries");
	lua_pushinteger(L, c->dropped);
	lua_setfield(L, -2, "dropped");
	lua_pushinteger(L, c->lost);
	lua_setfield(L, -2, "lost");
	lua_pushinteger(L, c->nostack);
	lua_setfield(L, -2, "without_stack");
	return 2;
}

static void counter_release(struct counter *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	if (c->inst)
		dp_rawbuf_close(&c->rb); /* and its formats */
	if (c->dat)
		tracecmd_close(c->dat); /* and the file's formats */
	c->dat = NULL;
	c->tep = NULL;
	for (size_t i = 0; i < c->nstacks; i++)
		free(c->stacks[i].addr);
	free(c->stacks);
	free(c->tab);
	free(c->pend);
	c->stacks = NULL;
	c->tab = NULL;
	c->pend = NULL;
	c->cap = c->n = c->nstacks = 0;
}

static int counter_close(lua_State *L)
{
	counter_release(luaL_checkudata(L, 1, DP_COUNTER_MT));
	return 0;
}

static int counter_fd(lua_State *L)
{
	struct counter *c = check_counter(L, 1);
	lua_pushinteger(L, c->inst && c->rb.ncpu ? c->rb.fds[0] : -1);
	return 1;
}

static int counter_tostring(lua_State *L)
{
	struct counter *c = luaL_checkudata(L, 1, DP_COUNTER_MT);
	lua_pushfstring(L, DP_COUNTER_MT " (%s, %I hits, %I entries)",
			c->closed ? "closed" : c->inst ? "live" : "trace.dat", (lua_Integer)c->hits,
			(lua_Integer)c->n);
	return 1;
}

/* What to count, from the option table at opts, with c->tep loaded. */
static const char *setup_keys(lua_State *L, struct counter *c, int opts)
{
	const char *sys = dp_opt_string(L, opts, "system", "skb");
	const char *name = dp_opt_string(L, opts, "event", "kfree_skb");
	struct tep_event *ev = tep_find_event_by_name(c->tep, sys, name), *kst;
	static char msg[300];
	if (!ev) {
		snprintf(msg, sizeof(msg), "no format for %s:%s", sys, name);
		return msg;
	}
	c->event_id = ev->id;
	kst = tep_find_event_by_name(c->tep, "ftrace", "kernel_stack");
	c->stack_id = kst ? kst->id : -1;
	if (kst) {
		c->stack_size = tep_find_field(kst, "size");
		c->stack_caller = tep_find_field(kst, "caller");
	}
	c->max = (size_t)dp_opt_integer(L, opts, "size", 2048);
	if (lua_getfield(L, opts, "keys") != LUA_TTABLE)
		return "keys: give a list of fields, e.g. { \"reason\", \"location.sym\" }";
	for (int i = 1;; i++) {
		const char *k, *dot;
		char field[64];
		if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
			lua_pop(L, 1);
			break;
		}
		k = lua_tostring(L, -1);
		if (strcmp(k, "stacktrace") == 0) {
			if (!c->stack_caller)
				return "this trace has no ftrace:kernel_stack format for a stack key";
			c->stack_key = 1;
			lua_pop(L, 1);
			continue;
		}
		if (c->nk == MAXK)
			return "at most 4 key fields (and stacktrace)";
		dot = strchr(k, '.');
		snprintf(field, sizeof(field), "%.*s", dot ? (int)(dot - k) : 63, k);
		c->kf[c->nk] = tep_find_any_field(ev, field);
		if (!c->kf[c->nk] || (c->kf[c->nk]->flags & (TEP_FIELD_IS_ARRAY | TEP_FIELD_IS_DYNAMIC))) {
			snprintf(msg, sizeof(msg), "%s:%s has no numeric field '%s'", sys, name, field);
			return msg;
		}
		c->how[c->nk] = !dot ? HOW_NUM : strcmp(dot, ".sym") == 0 ? HOW_SYM
				  : strcmp(dot, ".sym-offset") == 0 ? HOW_SYM_OFFSET : -1;
		if (c->how[c->nk] < 0) {
			snprintf(msg, sizeof(msg), "key '%s': the modifiers are .sym and .sym-offset", k);
			return msg;
		}
		snprintf(c->kname[c->nk], sizeof(c->kname[0]), "%s", field);
		c->nk++;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	if (!c->nk && !c->stack_key)
		return "keys: at least one field or stacktrace";
	if (lua_getfield(L, opts, "values") == LUA_TTABLE) {
		for (int i = 1;; i++) {
			const char *v;
			if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
				lua_pop(L, 1);
				break;
			}
			v = lua_tostring(L, -1);
			if (strcmp(v, "hitcount") != 0) {
				if (c->nv == MAXV)
					return "at most 4 summed values";
				c->vf[c->nv] = tep_find_any_field(ev, v);
				if (!c->vf[c->nv] || (c->vf[c->nv]->flags & (TEP_FIELD_IS_ARRAY |
									   TEP_FIELD_IS_DYNAMIC))) {
					snprintf(msg, sizeof(msg), "%s:%s has no numeric field '%s'", sys,
						 name, v);
					return msg;
				}
				snprintf(c->vname[c->nv], sizeof(c->vname[0]), "%s", v);
				c->nv++;
			}
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	return NULL;
}

static struct counter *new_counter(lua_State *L)
{
	struct counter *c = lua_newuserdatauv(L, sizeof(*c), 1);
	memset(c, 0, sizeof(*c));
	luaL_setmetatable(L, DP_COUNTER_MT);
	return c;
}

static int fail_counter(lua_State *L, struct counter *c, const char *what, const char *why)
{
	lua_pushfstring(L, "%s: %s", what, why);
	counter_release(c);
	return lua_error(L);
}

static const char *const count_opts[] = {"system", "event", "keys", "values", "size",
					 "systems", NULL};

/*
 * core.counter(inst, { system =, event =, keys = {...}, values = {...},
 * size =, systems = {...} }) -> Counter over the instance's buffers. The
 * event (and its stacktrace trigger, for a stack key) is set up by the
 * caller on the instance; this only reads and counts.
 */
static int counter_new(lua_State *L)
{
	struct dp_instance *in = dp_check_instance(L, 1);
	const char *systems[64], *fail;
	struct counter *c;
	int n = 0;
	luaL_checktype(L, 2, LUA_TTABLE);
	dp_check_fields(L, 2, count_opts);
	if (lua_getfield(L, 2, "systems") == LUA_TTABLE)
		for (int i = 1; n < 62 && lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
			systems[n++] = lua_tostring(L, -1);
			lua_pop(L, 1);
		}
	lua_settop(L, 2);
	systems[n] = NULL;
	c = new_counter(L);
	c->inst = in;
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 1); /* the instance lives as long as its counter */
	errno = 0;
	fail = dp_rawbuf_open(&c->rb, in->ti, systems, dp_custom_dir ? tracefs_tracing_dir() : NULL);
	if (fail)
		return fail_counter(L, c, "counter", errno ? strerror(errno) : fail);
	c->tep = c->rb.tep;
	fail = setup_keys(L, c, 2);
	if (fail)
		return fail_counter(L, c, "counter", fail);
	dp_instance_adopt(L, 1, -1, DP_CHILD_READER, NULL);
	return 1;
}

static int dat_count(struct tracecmd_input *h, struct tep_record *rec, int cpu, void *data)
{
	struct counter *c = data;
	(void)h;
	if (rec->missed_events > 0)
		c->lost += rec->missed_events;
	count_event(c, cpu, rec->data, rec->size);
	return 0;
}

/* core.count_dat(path, { system =, event =, keys =, values =, size = }) ->
 * Counter over a whole trace.dat (every buffer of the file) */
static int count_dat(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	const char *fail;
	struct counter *c;
	int nb;
	luaL_checktype(L, 2, LUA_TTABLE);
	dp_check_fields(L, 2, count_opts);
	c = new_counter(L);
	errno = 0;
	c->dat = tracecmd_open(path, 0);
	if (!c->dat)
		return fail_counter(L, c, path, errno ? strerror(errno) : "not a trace.dat");
	c->tep = tracecmd_get_tep(c->dat);
	if (!c->tep)
		return fail_counter(L, c, path, "no event formats in the file");
	fail = setup_keys(L, c, 2);
	if (fail)
		return fail_counter(L, c, path, fail);
	tracecmd_iterate_events(c->dat, NULL, 0, dat_count, c);
	nb = tracecmd_buffer_instances(c->dat);
	for (int i = 0; i < nb; i++) {
		struct tracecmd_input *b = tracecmd_buffer_instance_handle(c->dat, i);
		if (!b)
			continue;
		flush_all(c);
		tracecmd_iterate_events(b, NULL, 0, dat_count, c);
		tracecmd_close(b);
	}
	flush_all(c);
	return 1;
}

static const luaL_Reg counter_methods[] = {
	{"poll", counter_poll},
	{"rows", counter_rows},
	{"fd", counter_fd},
	{"close", counter_close},
	{NULL, NULL},
};

static const luaL_Reg counter_meta[] = {
	{"__gc", counter_close},
	{"__close", counter_close},
	{"__tostring", counter_tostring},
	{NULL, NULL},
};

void dp_count_open(lua_State *L)
{
	luaL_newmetatable(L, DP_COUNTER_MT);
	luaL_setfuncs(L, counter_meta, 0);
	luaL_newlib(L, counter_methods);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, -3, "Counter");
	lua_pop(L, 1);
	lua_pushcfunction(L, counter_new);
	lua_setfield(L, -2, "counter");
	lua_pushcfunction(L, count_dat);
	lua_setfield(L, -2, "count_dat");
}
