/*
 * ksym_driver.c - ksym.c's table of kallsyms against libtraceevent's
 * own (tep_parse_kallsyms): the same symbols, and for every address of
 * the file and a few bytes past it, the same name, start and size; and
 * the same name and start from a tep that has the table as its function
 * resolver (what libtraceevent's own lookups see).
 *
 *   build/ksym_driver FILE   (a kallsyms text, /proc/kallsyms too)
 *
 * Prints "symbols A B lookups N differ D"; exits 1 when they differ.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event-parse.h>

#include "ksym.h"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	size_t cap = 1 << 16, n;
	char *buf = malloc(cap);
	*len = 0;
	if (!f || !buf) {
		free(buf);
		if (f)
			fclose(f);
		return NULL;
	}
	while ((n = fread(buf + *len, 1, cap - *len - 1, f)) > 0) {
		*len += n;
		if (cap - *len < 4096) {
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	buf[*len] = 0;
	fclose(f);
	return buf;
}

int main(int argc, char **argv)
{
	struct tep_handle *lib = tep_alloc(), *own = tep_alloc();
	struct dp_ksyms k;
	long lookups = 0, differ = 0;
	size_t len;
	char *text, *p;
	int rl, ro, nl, no;
	if (argc != 2 || !lib || !own) {
		fprintf(stderr, "usage: ksym_driver FILE\n");
		return 2;
	}
	text = slurp(argv[1], &len);
	if (!text) {
		perror(argv[1]);
		return 2;
	}
	rl = tep_parse_kallsyms(lib, text);
	dp_ksyms_init(&k, own, 0);
	ro = dp_ksym_load_file(&k, argv[1]);
	for (p = text; *p;) {
		char *nl = strchr(p, '\n');
		unsigned long long a = strtoull(p, NULL, 16);
		for (int off = 0; off <= 14; off += 7) {
			const char *n1 = NULL, *n2 = NULL, *n3 = NULL;
			unsigned long long s1 = 0, s2 = 0, s3 = 0;
			unsigned long z1 = 0, z2 = 0, z3 = 0;
			int f1 = tep_find_function_info(lib, a + off, &n1, &s1, &z1);
			int f2 = dp_ksym_find(&k, a + off, &n2, &s2, &z2);
			int f3 = tep_find_function_info(own, a + off, &n3, &s3, &z3);
			lookups++;
			if (f1 != f2 || f1 != f3 ||
			    (f1 && (strcmp(n1, n2) != 0 || s1 != s2 || z1 != z2 || strcmp(n1, n3) != 0 || s1 != s3))) {
				if (differ++ < 5)
					fprintf(stderr, "%llx: %s+%llx/%lx against %s+%llx/%lx (resolver %s+%llx)\n",
						a + off, n1 ? n1 : "-", s1, z1, n2 ? n2 : "-", s2, z2,
						n3 ? n3 : "-", s3);
			}
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	nl = tep_get_function_count(lib);
	no = (int)k.n;
	printf("symbols %d %d lookups %ld differ %ld status %d %d\n", nl, no, lookups, differ, rl, ro);
	free(text);
	tep_free(lib);
	dp_ksyms_free(&k);
	tep_free(own);
	return differ || rl != ro || nl != no ? 1 : 0;
}
