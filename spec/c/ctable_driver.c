/*
 * ctable_driver - the counting table (ctable.c) without Lua. Reads one
 * command a line on stdin, prints what the table says on stdout:
 *
 *   init NK NV MAX        a new, empty table
 *   add K... STACK V...   count one event (NK keys, a stack id, NV values)
 *   stack A...            intern a stack of addresses: prints its id
 *   intern TEXT           intern the rest of the line: prints its id
 *   find TEXT             the id of the rest of the line if interned, else 0
 *                         (adds nothing)
 *   str ID                prints the interned string ID
 *   dump                  every entry, one line each, sorted:
 *                         "K... STACK HITS SUM...", then
 *                         "hits H dropped D entries N stacks S strings T"
 *
 * Used by spec/13-hist_spec.lua against a model of the table kept in Lua.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctable.h"

static struct dp_ctable t;

static int cmp_entry(const void *a, const void *b)
{
	const struct dp_centry *x = *(struct dp_centry *const *)a, *y = *(struct dp_centry *const *)b;
	for (int i = 0; i < t.nk; i++)
		if (x->k[i] != y->k[i])
			return x->k[i] < y->k[i] ? -1 : 1;
	return x->stack < y->stack ? -1 : x->stack > y->stack;
}

static void dump(void)
{
	struct dp_centry **list = malloc(sizeof(*list) * (t.n ? t.n : 1));
	size_t m = 0;
	for (size_t i = 0; i < t.cap; i++)
		if (t.tab[i].used)
			list[m++] = &t.tab[i];
	qsort(list, m, sizeof(*list), cmp_entry);
	for (size_t i = 0; i < m; i++) {
		for (int k = 0; k < t.nk; k++)
			printf("%llu ", (unsigned long long)list[i]->k[k]);
		printf("%u %llu", list[i]->stack, (unsigned long long)list[i]->hits);
		for (int v = 0; v < t.nv; v++)
			printf(" %llu", (unsigned long long)list[i]->sum[v]);
		printf("\n");
	}
	printf("hits %lld dropped %lld entries %zu stacks %zu strings %zu\n", t.hits, t.dropped, t.n,
	       t.nstacks, t.nstr);
	free(list);
}

/* up to max numbers from p */
static int numbers(char *p, uint64_t *out, int max)
{
	int n = 0;
	char *end;
	while (n < max) {
		unsigned long long v = strtoull(p, &end, 10);
		if (end == p)
			break;
		out[n++] = v;
		p = end;
	}
	return n;
}

int main(void)
{
	static char line[1 << 16];
	uint64_t a[1024];
	dp_ctable_init(&t, 1, 0, 16);
	while (fgets(line, sizeof(line), stdin)) {
		size_t len = strlen(line);
		if (len && line[len - 1] == '\n')
			line[--len] = 0;
		if (strncmp(line, "init ", 5) == 0) {
			int n = numbers(line + 5, a, 3);
			if (n != 3) {
				fprintf(stderr, "init NK NV MAX\n");
				return 2;
			}
			dp_ctable_free(&t);
			dp_ctable_init(&t, (int)a[0], (int)a[1], (size_t)a[2]);
		} else if (strncmp(line, "add ", 4) == 0) {
			int want = t.nk + 1 + t.nv, n = numbers(line + 4, a, want);
			if (n != want) {
				fprintf(stderr, "add: %d numbers, not %d\n", want, n);
				return 2;
			}
			dp_ctable_add(&t, a, (uint32_t)a[t.nk], a + t.nk + 1);
		} else if (strncmp(line, "stack", 5) == 0) {
			int n = numbers(line + 5, a, 1024);
			printf("%u\n", dp_ctable_stack(&t, a, n));
		} else if (strncmp(line, "intern ", 7) == 0) {
			printf("%llu\n", (unsigned long long)dp_ctable_intern(&t, line + 7, len - 7));
		} else if (strncmp(line, "find ", 5) == 0) {
			printf("%llu\n", (unsigned long long)dp_ctable_find(&t, line + 5, len - 5));
		} else if (strncmp(line, "str ", 4) == 0) {
			size_t id = strtoul(line + 4, NULL, 10);
			printf("%s\n", id >= 1 && id <= t.nstr ? t.str[id - 1] : "(none)");
		} else if (strcmp(line, "dump") == 0) {
			dump();
		} else if (len) {
			fprintf(stderr, "unknown command: %s\n", line);
			return 2;
		}
	}
	dp_ctable_free(&t);
	return 0;
}
