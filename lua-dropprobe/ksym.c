/*
 * ksym.c - kernel addresses by name (see ksym.h).
 */
#include "ksym.h"

#include <stdio.h>
#include <stdlib.h>

#include <event-parse.h>

int dp_ksym_format(struct tep_handle *tep, unsigned long long addr, int offset, char *buf, size_t len)
{
	const char *name = NULL;
	unsigned long long start;
	unsigned long size;
	if (addr && tep && tep_find_function_info(tep, addr, &name, &start, &size) && name) {
		if (!offset)
			snprintf(buf, len, "%s", name);
		else if (size)
			snprintf(buf, len, "%s+0x%llx/0x%lx", name, addr - start, size);
		else
			snprintf(buf, len, "%s+0x%llx", name, addr - start);
		return 1;
	}
	snprintf(buf, len, "0x%llx", addr);
	return 0;
}

int dp_ksym_load(struct tep_handle *tep)
{
	FILE *f = fopen("/proc/kallsyms", "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	int rc = -1;
	if (!f)
		return -1;
	for (;;) {
		if (cap - len < 65536) {
			char *nb = realloc(buf, cap ? cap * 2 : 1 << 20);
			if (!nb)
				goto out;
			buf = nb;
			cap = cap ? cap * 2 : 1 << 20;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		if (n == 0)
			break;
		len += n;
	}
	buf[len] = 0;
	rc = tep_parse_kallsyms(tep, buf) == 0 ? 0 : -1;
out:
	free(buf);
	fclose(f);
	return rc;
}
