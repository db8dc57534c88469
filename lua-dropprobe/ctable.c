/*
 * ctable.c - the counting table, its stack and string interners (see
 * ctable.h).
 */
#include <stdlib.h>
#include <string.h>

#include "ctable.h"

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

static uint64_t fnv(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

static uint64_t entry_hash(const struct dp_ctable *t, const uint64_t *k, uint32_t stack)
{
	uint64_t h = stack;
	for (int i = 0; i < t->nk; i++)
		h = mix(h, k[i]);
	return h;
}

void dp_ctable_init(struct dp_ctable *t, int nk, int nv, size_t max)
{
	memset(t, 0, sizeof(*t));
	t->nk = nk < 0 ? 0 : nk > DP_CT_MAXK ? DP_CT_MAXK : nk;
	t->nv = nv < 0 ? 0 : nv > DP_CT_MAXV ? DP_CT_MAXV : nv;
	t->max = max;
}

static int grow(struct dp_ctable *t)
{
	size_t ncap = t->cap ? t->cap * 2 : 1024;
	struct dp_centry *nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return -1;
	for (size_t i = 0; i < t->cap; i++) {
		struct dp_centry *e = &t->tab[i];
		size_t j;
		if (!e->used)
			continue;
		for (j = entry_hash(t, e->k, e->stack) & (ncap - 1); nt[j].used; j = (j + 1) & (ncap - 1))
			;
		nt[j] = *e;
	}
	free(t->tab);
	t->tab = nt;
	t->cap = ncap;
	return 0;
}

void dp_ctable_add(struct dp_ctable *t, const uint64_t *k, uint32_t stack, const uint64_t *v)
{
	size_t j;
	t->hits++;
	if ((!t->cap || ((t->n + 1) * 2 > t->cap && t->n < t->max)) && grow(t) < 0 && !t->cap) {
		t->dropped++;
		return;
	}
	/* never more than half full: the probe ends at a free slot */
	for (j = entry_hash(t, k, stack) & (t->cap - 1); t->tab[j].used; j = (j + 1) & (t->cap - 1)) {
		struct dp_centry *e = &t->tab[j];
		if (e->stack == stack && memcmp(e->k, k, sizeof(uint64_t) * (size_t)t->nk) == 0)
			goto found;
	}
	if (t->n >= t->max || (t->n + 1) * 2 > t->cap) { /* full: dropped, as the kernel counts it */
		t->dropped++;
		return;
	}
	t->tab[j].used = 1;
	memcpy(t->tab[j].k, k, sizeof(uint64_t) * (size_t)t->nk);
	t->tab[j].stack = stack;
	t->n++;
found:
	t->tab[j].hits++;
	for (int i = 0; i < t->nv; i++)
		t->tab[j].sum[i] += v[i];
}

/* a hash index of n items at least twice as large as n + 1, rebuilt from
 * each item's hash; 0, or -1 out of memory */
static int index_room(uint32_t **idx, size_t *cap, size_t n, uint64_t (*hash_of)(const struct dp_ctable *, size_t),
		      const struct dp_ctable *t)
{
	size_t ncap, j;
	uint32_t *ni;
	if ((n + 1) * 2 <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 256;
	ni = calloc(ncap, sizeof(*ni));
	if (!ni)
		return -1;
	for (size_t i = 0; i < n; i++) {
		for (j = hash_of(t, i) & (ncap - 1); ni[j]; j = (j + 1) & (ncap - 1))
			;
		ni[j] = (uint32_t)i + 1;
	}
	free(*idx);
	*idx = ni;
	*cap = ncap;
	return 0;
}

static uint64_t stack_hash_at(const struct dp_ctable *t, size_t i)
{
	return t->stacks[i].hash;
}

static uint64_t str_hash_at(const struct dp_ctable *t, size_t i)
{
	return fnv(t->str[i], t->slen[i]);
}

uint32_t dp_ctable_stack(struct dp_ctable *t, const uint64_t *a, int n)
{
	uint64_t h = (uint64_t)n;
	size_t j;
	for (int i = 0; i < n; i++)
		h = mix(h, a[i]);
	if (index_room(&t->stidx, &t->capstidx, t->nstacks, stack_hash_at, t) < 0)
		return 0;
	for (j = h & (t->capstidx - 1); t->stidx[j]; j = (j + 1) & (t->capstidx - 1)) {
		struct dp_cstack *s = &t->stacks[t->stidx[j] - 1];
		if (s->hash == h && s->n == n && memcmp(s->addr, a, sizeof(uint64_t) * (size_t)n) == 0)
			return t->stidx[j];
	}
	if (t->nstacks == t->capstacks) {
		size_t nc = t->capstacks ? t->capstacks * 2 : 64;
		struct dp_cstack *ns = realloc(t->stacks, sizeof(*ns) * nc);
		if (!ns)
			return 0;
		t->stacks = ns;
		t->capstacks = nc;
	}
	t->stacks[t->nstacks].hash = h;
	t->stacks[t->nstacks].n = n;
	t->stacks[t->nstacks].addr = malloc(sizeof(uint64_t) * (size_t)(n ? n : 1));
	if (!t->stacks[t->nstacks].addr)
		return 0;
	memcpy(t->stacks[t->nstacks].addr, a, sizeof(uint64_t) * (size_t)n);
	t->stidx[j] = (uint32_t)++t->nstacks;
	return t->stidx[j];
}

uint64_t dp_ctable_find(const struct dp_ctable *t, const char *p, size_t n)
{
	if (!t->capidx)
		return 0;
	for (size_t j = fnv(p, n) & (t->capidx - 1); t->sidx[j]; j = (j + 1) & (t->capidx - 1)) {
		size_t i = t->sidx[j] - 1;
		if (t->slen[i] == n && memcmp(t->str[i], p, n) == 0)
			return i + 1;
	}
	return 0;
}

uint64_t dp_ctable_intern(struct dp_ctable *t, const char *p, size_t n)
{
	uint64_t h = fnv(p, n);
	size_t j;
	if (index_room(&t->sidx, &t->capidx, t->nstr, str_hash_at, t) < 0)
		return 0;
	for (j = h & (t->capidx - 1); t->sidx[j]; j = (j + 1) & (t->capidx - 1)) {
		size_t i = t->sidx[j] - 1;
		if (t->slen[i] == n && memcmp(t->str[i], p, n) == 0)
			return i + 1;
	}
	if (t->nstr == t->capstr) {
		size_t nc = t->capstr ? t->capstr * 2 : 256;
		char **ns = realloc(t->str, sizeof(*ns) * nc);
		size_t *nl;
		if (!ns)
			return 0;
		t->str = ns;
		nl = realloc(t->slen, sizeof(*nl) * nc);
		if (!nl)
			return 0;
		t->slen = nl;
		t->capstr = nc;
	}
	t->str[t->nstr] = malloc(n + 1);
	if (!t->str[t->nstr])
		return 0;
	memcpy(t->str[t->nstr], p, n);
	t->str[t->nstr][n] = 0;
	t->slen[t->nstr] = n;
	t->sidx[j] = (uint32_t)++t->nstr;
	return t->nstr;
}

void dp_ctable_free(struct dp_ctable *t)
{
	int nk = t->nk, nv = t->nv;
	size_t max = t->max;
	for (size_t i = 0; i < t->nstacks; i++)
		free(t->stacks[i].addr);
	free(t->stacks);
	free(t->stidx);
	free(t->tab);
	for (size_t i = 0; i < t->nstr; i++)
		free(t->str[i]);
	free(t->str);
	free(t->slen);
	free(t->sidx);
	dp_ctable_init(t, nk, nv, max);
}
