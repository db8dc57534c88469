/*
 * join.c - the joiner (see join.h).
 */
#include "join.h"

#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "record.h"

void dp_waits_free(struct dp_waits *w)
{
	free(w->h);
	w->h = NULL;
	w->n = 0;
}

int dp_waits_room(struct dp_waits *w, int cpu)
{
	int n;
	int *nh;
	if (cpu < 0 || cpu > DP_CPU_MAX)
		return -1;
	if (cpu < w->n)
		return 0;
	n = w->n ? w->n : 4;
	while (n <= cpu)
		n *= 2;
	nh = realloc(w->h, sizeof(int) * (size_t)n);
	if (!nh)
		return -1;
	for (int c = w->n; c < n; c++)
		nh[c] = -1;
	w->h = nh;
	w->n = n;
	return 0;
}

int dp_waits_put(struct dp_waits *w, int cpu, int h)
{
	int was = w->h[cpu];
	w->h[cpu] = h;
	return was;
}

int dp_waits_take(struct dp_waits *w, int cpu)
{
	int h = dp_waits_end(w, cpu);
	if (h < 0)
		w->orphans++;
	return h;
}

int dp_waits_end(struct dp_waits *w, int cpu)
{
	int h;
	if (cpu < 0 || cpu >= w->n)
		return -1;
	h = w->h[cpu];
	w->h[cpu] = -1;
	return h;
}

void dp_join_init(struct dp_join *j)
{
	memset(j, 0, sizeof(*j));
	j->open_ref = LUA_NOREF;
}

void dp_join_free(struct dp_join *j)
{
	dp_waits_free(&j->waits);
	free(j->lost_cpu);
	free(j->mark_cpu);
	free(j->read_cpu);
	free(j->q);
	free(j->free_refs);
	dp_join_init(j);
}

static void *grow(lua_State *L, void *p, size_t elem, int n)
{
	void *np = realloc(p, elem * (size_t)n);
	if (!np)
		luaL_error(L, "out of memory");
	return np;
}

void dp_join_cpus(lua_State *L, struct dp_join *j, int ncpu)
{
	if (ncpu <= j->ncpu)
		return;
	if (ncpu > DP_CPU_MAX + 1)
		luaL_error(L, "CPU number %d out of range", ncpu - 1);
	if (dp_waits_room(&j->waits, ncpu - 1) < 0)
		luaL_error(L, "out of memory");
	j->lost_cpu = grow(L, j->lost_cpu, sizeof(long long), ncpu);
	j->mark_cpu = grow(L, j->mark_cpu, sizeof(long long), ncpu);
	j->read_cpu = grow(L, j->read_cpu, sizeof(long long), ncpu);
	for (int c = j->ncpu; c < ncpu; c++) {
		j->lost_cpu[c] = j->mark_cpu[c] = j->read_cpu[c] = 0;
	}
	j->ncpu = ncpu;
}

/* A CPU beyond the arrays (a text line's, a file's): room for it, doubling. */
static inline void have_cpu(lua_State *L, struct dp_join *j, int cpu)
{
	if (cpu >= j->ncpu) {
		int n = j->ncpu ? j->ncpu : 4;
		while (n <= cpu)
			n *= 2;
		dp_join_cpus(L, j, n);
	}
}

static void q_room(lua_State *L, struct dp_join *j)
{
	size_t ncap;
	struct dp_qent *nq;
	if (j->qlen < j->qcap)
		return;
	ncap = j->qcap ? j->qcap * 2 : 256;
	nq = malloc(sizeof(*nq) * ncap);
	if (!nq)
		luaL_error(L, "out of memory");
	for (size_t i = 0; i < j->qlen; i++)
		nq[i] = j->q[(j->qhead + i) % j->qcap];
	free(j->q);
	j->q = nq;
	j->qhead = 0;
	j->qcap = ncap;
}

int dp_join_record(lua_State *L, struct dp_join *j, int refs, int keys, int cpu, int hold)
{
	struct dp_qent *e;
	int ref;
	if (cpu < 0)
		cpu = 0;
	have_cpu(L, j, cpu);
	if (j->mark_cpu[cpu]) {
		lua_pushinteger(L, j->mark_cpu[cpu]);
		dp_setkey(L, keys, DP_K_LOST_BEFORE);
		j->mark_cpu[cpu] = 0;
	}
	q_room(L, j);
	if (j->nfree) {
		ref = j->free_refs[--j->nfree];
	} else {
		/* room to list every slot as free once it is */
		if (j->top_ref == j->cap_refs) {
			int cap = j->cap_refs ? 2 * j->cap_refs : 256;
			if (cap > (1 << 28))
				luaL_error(L, "too many records waiting");
			j->free_refs = grow(L, j->free_refs, sizeof(int), cap);
			j->cap_refs = cap;
		}
		ref = ++j->top_ref;
	}
	lua_rawseti(L, refs, ref);
	e = &j->q[(j->qhead + j->qlen) % j->qcap];
	e->ref = ref;
	e->cpu = cpu;
	j->qlen++;
	j->nread++;
	j->read_cpu[cpu]++;
	/* a record that may get a stack holds the queue until the CPU's next
	 * entry, or release */
	dp_waits_put(&j->waits, cpu, hold ? ref : -1);
	return ref;
}

/* The CPU's record that waits for a stack, no longer waiting; LUA_NOREF
 * (an orphan stack, counted) when none does. */
static int take_pending(struct dp_join *j, int cpu)
{
	int ref = dp_waits_take(&j->waits, cpu);
	return ref < 0 ? LUA_NOREF : ref;
}

int dp_join_stack(lua_State *L, struct dp_join *j, int refs, int keys, int cpu)
{
	int ref = take_pending(j, cpu);
	if (ref == LUA_NOREF) {
		lua_pop(L, 1);
		return 0;
	}
	if (!j->raw_stacks)
		dp_stack_trim(L, -1);
	lua_rawgeti(L, refs, ref);
	lua_insert(L, -2);
	dp_setkey(L, keys, DP_K_STACK);
	lua_pop(L, 1);
	return 1;
}

int dp_join_stack_open(struct dp_join *j, int cpu)
{
	int ref = take_pending(j, cpu);
	if (ref != LUA_NOREF)
		j->open_ref = ref;
	return ref;
}

void dp_join_stack_done(lua_State *L, struct dp_join *j, int refs, int keys)
{
	if (j->open_ref != LUA_NOREF && !j->raw_stacks) {
		lua_rawgeti(L, refs, j->open_ref);
		lua_rawgeti(L, keys, DP_K_STACK);
		if (lua_rawget(L, -2) == LUA_TTABLE)
			dp_stack_trim(L, -1);
		lua_pop(L, 2);
	}
	j->open_ref = LUA_NOREF;
}

void dp_join_lost(lua_State *L, struct dp_join *j, int cpu, long long n)
{
	if (cpu < 0)
		cpu = 0;
	have_cpu(L, j, cpu);
	if (n > 0) {
		j->lost += n;
		j->lost_cpu[cpu] += n;
	}
	/* -1: count unknown (the kernel's overrun counters still count it) */
	if (n < 0 || j->mark_cpu[cpu] < 0)
		j->mark_cpu[cpu] = -1;
	else
		j->mark_cpu[cpu] += n;
}

int dp_join_pop(lua_State *L, struct dp_join *j, int refs)
{
	int ref, cpu;
	if (!j->qlen)
		return 0;
	ref = j->q[j->qhead].ref;
	cpu = j->q[j->qhead].cpu;
	if (ref == j->open_ref || dp_waits_is(&j->waits, cpu, ref))
		return 0; /* its stack may still come: records stay in order */
	j->qhead = (j->qhead + 1) % j->qcap;
	j->qlen--;
	lua_rawgeti(L, refs, ref);
	lua_pushnil(L);
	lua_rawseti(L, refs, ref);
	j->free_refs[j->nfree++] = ref;
	return 1;
}

int dp_join_waiting(const struct dp_join *j)
{
	if (j->open_ref != LUA_NOREF)
		return 1;
	for (int c = 0; c < j->waits.n; c++)
		if (j->waits.h[c] >= 0)
			return 1;
	return 0;
}

void dp_join_release(struct dp_join *j)
{
	for (int c = 0; c < j->waits.n; c++)
		dp_waits_end(&j->waits, c);
	j->open_ref = LUA_NOREF;
}

void dp_join_stats(lua_State *L, const struct dp_join *j)
{
	lua_pushinteger(L, j->nread);
	lua_setfield(L, -2, "read");
	lua_pushinteger(L, j->lost);
	lua_setfield(L, -2, "lost_marked");
	lua_pushinteger(L, j->waits.orphans);
	lua_setfield(L, -2, "orphan_stacks");
	lua_newtable(L);
	for (int c = 0; c < j->ncpu; c++)
		if (j->lost_cpu[c]) {
			lua_pushinteger(L, j->lost_cpu[c]);
			lua_rawseti(L, -2, c);
		}
	lua_setfield(L, -2, "lost_cpu");
	lua_newtable(L);
	for (int c = 0; c < j->ncpu; c++) {
		lua_pushinteger(L, j->read_cpu[c]);
		lua_rawseti(L, -2, c);
	}
	lua_setfield(L, -2, "read_cpu");
}
