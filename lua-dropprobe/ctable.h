/*
 * ctable.h - the counting table: entries keyed by up to DP_CT_MAXK 64-bit
 * values and a stack id, each with a hit count and up to DP_CT_MAXV sums;
 * stacks (arrays of addresses or string ids) and strings interned once,
 * each through a hash index. Plain C, no Lua: count.c fills it from
 * events, the C driver and the fuzzer from anything.
 *
 * Like a kernel hist trigger, the table holds at most `max` entries; an
 * event for a new key beyond that is counted in `dropped`, never silently.
 */
#ifndef DP_CTABLE_H
#define DP_CTABLE_H

#include <stddef.h>
#include <stdint.h>

#define DP_CT_MAXK 6 /* key fields */
#define DP_CT_MAXV 4 /* summed fields */

struct dp_centry {
	uint64_t k[DP_CT_MAXK];
	uint32_t stack; /* 0: none, else the stack's id */
	uint32_t used;
	uint64_t hits;
	uint64_t sum[DP_CT_MAXV];
};

struct dp_cstack {
	uint64_t hash;
	int n;
	uint64_t *addr;
};

struct dp_ctable {
	int nk, nv;	/* key fields and summed values of every entry */
	size_t max;	/* entries at most */
	struct dp_centry *tab; /* open addressing, never more than half full */
	size_t cap, n;
	struct dp_cstack *stacks; /* id - 1 */
	size_t nstacks, capstacks;
	uint32_t *stidx; /* hash index of stacks: id, 0 free */
	size_t capstidx;
	char **str;	/* interned strings: id - 1 */
	size_t *slen, nstr, capstr;
	uint32_t *sidx; /* hash index of str: id, 0 free */
	size_t capidx;
	long long hits, dropped;
};

/* An empty table for nk keys (0..DP_CT_MAXK) and nv sums, max entries. */
void dp_ctable_init(struct dp_ctable *t, int nk, int nv, size_t max);

/* Count one event: k[0..nk-1], its stack id (0: none), v[0..nv-1]. A new
 * key in a full table (or out of memory) is counted in dropped. */
void dp_ctable_add(struct dp_ctable *t, const uint64_t *k, uint32_t stack, const uint64_t *v);

/* The id (1...) of a stack of n values, interned once; 0 when out of
 * memory. The same values give the same id. */
uint32_t dp_ctable_stack(struct dp_ctable *t, const uint64_t *a, int n);

/* The id (1...) of a string of n bytes, interned once; 0 when out of
 * memory. t->str[id - 1] is it, NUL-terminated. */
uint64_t dp_ctable_intern(struct dp_ctable *t, const char *p, size_t n);

/* The id of a string of n bytes interned before, or 0: nothing is added
 * (a full table's keys are looked up, never grown). */
uint64_t dp_ctable_find(const struct dp_ctable *t, const char *p, size_t n);

/* Everything the table holds freed; it is empty again (nk, nv, max kept). */
void dp_ctable_free(struct dp_ctable *t);

#endif
