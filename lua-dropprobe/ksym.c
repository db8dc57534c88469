/*
 * ksym.c - kernel addresses as the kernel prints them (%pS), from
 * /proc/kallsyms through libtraceevent.
 */
#include "ksym.h"

#include <stdio.h>
#include <stdlib.h>

#include <event-parse.h>

struct tep_handle *dp_ksym_load(void)
{
	FILE *f = fopen("/proc/kallsyms", "re");
	struct tep_handle *tep;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	if (!f)
		return NULL;
	for (;;) {
		if (cap - len < 65536) {
			char *nb = realloc(buf, cap ? cap * 2 : 1 << 20);
			if (!nb)
				goto fail;
			buf = nb;
			cap = cap ? cap * 2 : 1 << 20;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	buf[len] = '\0';
	fclose(f);
	f = NULL;
	tep = tep_alloc();
	if (!tep || tep_parse_kallsyms(tep, buf) < 0) {
		tep_free(tep);
		goto fail;
	}
	free(buf);
	return tep;
fail:
	if (f)
		fclose(f);
	free(buf);
	return NULL;
}

int dp_ksym_format(struct tep_handle *tep, unsigned long long addr, char *buf, size_t len)
{
	const char *name;
	unsigned long long start;
	unsigned long size;
	if (!tep || !addr || !tep_find_function_info(tep, addr, &name, &start, &size) || !name)
		return 0;
	if (size)
		snprintf(buf, len, "%s+0x%llx/0x%lx", name, addr - start, size);
	else
		snprintf(buf, len, "%s+0x%llx", name, addr - start);
	return 1;
}
