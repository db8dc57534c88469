/*
 * fuzz_count - libFuzzer over the counting table (ctable.c): the input is
 * a program of adds, stack and string interns (and look-ups), checked against a naive
 * model (linear lists) after every step: the same key always lands in the
 * same entry, hits and sums add up, a full table drops and says so, a
 * stack or string has one id and reads back as it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctable.h"

#define MODEL 4096

struct mentry {
	uint64_t k[DP_CT_MAXK];
	uint32_t stack;
	uint64_t hits, sum[DP_CT_MAXV];
};

static void check(int ok)
{
	if (!ok)
		abort();
}

static const struct dp_centry *find(const struct dp_ctable *t, const struct mentry *m)
{
	for (size_t i = 0; i < t->cap; i++) {
		const struct dp_centry *e = &t->tab[i];
		if (e->used && e->stack == m->stack && memcmp(e->k, m->k, sizeof(uint64_t) * (size_t)t->nk) == 0)
			return e;
	}
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mentry model[MODEL];
	struct dp_ctable t;
	size_t nm = 0, pos = 3;
	long long dropped = 0, hits = 0;
	if (size < 3)
		return 0;
	dp_ctable_init(&t, data[0] % (DP_CT_MAXK + 1), data[1] % (DP_CT_MAXV + 1), 1 + data[2] % 64);
	while (pos < size) {
		uint8_t op = data[pos++];
		if (op % 3 == 0) { /* add: keys and values from the next bytes, small so that they repeat */
			uint64_t k[DP_CT_MAXK] = {0}, v[DP_CT_MAXV] = {0};
			uint32_t stack;
			size_t i;
			if (pos + (size_t)t.nk + (size_t)t.nv + 1 > size)
				break;
			for (int j = 0; j < t.nk; j++)
				k[j] = data[pos++] % 8;
			stack = data[pos++] % 4;
			for (int j = 0; j < t.nv; j++)
				v[j] = data[pos++];
			dp_ctable_add(&t, k, stack, v);
			hits++;
			for (i = 0; i < nm; i++)
				if (model[i].stack == stack && memcmp(model[i].k, k, sizeof(k)) == 0)
					break;
			if (i == nm && nm < t.max && nm < MODEL) {
				memset(&model[nm], 0, sizeof(model[nm]));
				memcpy(model[nm].k, k, sizeof(k));
				model[nm].stack = stack;
				nm++;
			}
			if (i < nm) {
				model[i].hits++;
				for (int j = 0; j < t.nv; j++)
					model[i].sum[j] += v[j];
			} else {
				dropped++;
			}
		} else if (op % 3 == 1) { /* a stack of up to 7 addresses */
			uint64_t a[8];
			int n = (op >> 2) % 8;
			uint32_t id, again;
			if (pos + (size_t)n > size)
				break;
			for (int j = 0; j < n; j++)
				a[j] = data[pos++] % 4;
			id = dp_ctable_stack(&t, a, n);
			check(id >= 1 && id <= t.nstacks);
			check(t.stacks[id - 1].n == n && memcmp(t.stacks[id - 1].addr, a, sizeof(uint64_t) * (size_t)n) == 0);
			again = dp_ctable_stack(&t, a, n);
			check(again == id);
		} else { /* a string of up to 15 bytes, NULs included */
			size_t n = (op >> 2) % 16;
			uint64_t id, known;
			if (pos + n > size)
				break;
			known = dp_ctable_find(&t, (const char *)data + pos, n); /* adds nothing */
			id = dp_ctable_intern(&t, (const char *)data + pos, n);
			check(id >= 1 && id <= t.nstr);
			check(known == 0 ? id == t.nstr : known == id); /* new: the last one */
			check(dp_ctable_find(&t, (const char *)data + pos, n) == id);
			check(t.slen[id - 1] == n && memcmp(t.str[id - 1], data + pos, n) == 0 && t.str[id - 1][n] == 0);
			check(dp_ctable_intern(&t, (const char *)data + pos, n) == id);
			pos += n;
		}
	}
	check(t.hits == hits && t.dropped == dropped && t.n == nm && t.n <= t.max);
	for (size_t i = 0; i < nm; i++) {
		const struct dp_centry *e = find(&t, &model[i]);
		check(e != NULL && e->hits == model[i].hits);
		for (int j = 0; j < t.nv; j++)
			check(e->sum[j] == model[i].sum[j]);
	}
	/* distinct stacks have distinct contents */
	for (size_t i = 0; i < t.nstacks; i++)
		for (size_t j = i + 1; j < t.nstacks; j++)
			check(t.stacks[i].n != t.stacks[j].n ||
			      memcmp(t.stacks[i].addr, t.stacks[j].addr, sizeof(uint64_t) * (size_t)t.stacks[i].n) != 0);
	dp_ctable_free(&t);
	return 0;
}
