/*
 * ksym.c - kernel addresses by name (see ksym.h).
 */
#include "ksym.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event-parse.h>

void dp_ksyms_init(struct dp_ksyms *k, struct tep_handle *tep, int lazy)
{
	k->tep = tep;
	k->pending = tep && lazy;
}

void dp_ksyms_need(struct dp_ksyms *k)
{
	if (k && k->tep && k->pending) {
		k->pending = 0; /* once, whether it could be read or not */
		dp_ksym_load(k->tep);
	}
}

int dp_ksym_format(struct dp_ksyms *k, unsigned long long addr, int offset, char *buf, size_t len)
{
	const char *name = NULL;
	unsigned long long start;
	unsigned long size;
	struct tep_handle *tep = k ? k->tep : NULL;
	if (addr)
		dp_ksyms_need(k);
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

/* isspace() of the C locale, as sscanf's %s ends a word */
static int blank(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * The lines of kallsyms text (buf, len bytes, changed in place) into tep:
 * "addr type name[\t[mod]]", as tep_parse_kallsyms reads them (its sscanf
 * "%llx %c %s\t[%s" costs twice as much): the name is the word after the
 * type, the module the word after a tab and '[' less its last character
 * (']'), and absolute symbols ('A', 'a': per-CPU offsets on x86-64) and
 * names starting with '$' (arm's mapping symbols) are left out. Symbols
 * are registered in the order of the text, as tep_parse_kallsyms does, so
 * that of several at one address the same one names it. 0, or -1 at a
 * line that is not kallsyms (those before it are kept, as there).
 */
static int parse_kallsyms(struct tep_handle *tep, char *buf, size_t len)
{
	char *p = buf, *end = buf + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *q, *name, *name_end, *mod = NULL;
		unsigned long long addr;
		char type;
		if (!nl)
			nl = end;
		*nl = 0;
		if (nl == p) { /* an empty line, skipped as strtok_r skips it */
			p = nl + 1;
			continue;
		}
		addr = strtoull(p, &q, 16);
		if (q == p)
			return -1;
		while (blank(*q))
			q++;
		type = *q;
		if (!type)
			return -1;
		q++;
		while (blank(*q))
			q++;
		name = q;
		while (*q && !blank(*q))
			q++;
		if (q == name)
			return -1;
		name_end = q;
		if (q[0] == '\t' && q[1] == '[') {
			char *m = q + 2, *e = m;
			while (*e && !blank(*e))
				e++;
			if (e > m) {
				e[-1] = 0;
				mod = m;
			}
		}
		*name_end = 0;
		if (name[0] != '$' && type != 'A' && type != 'a')
			tep_register_function(tep, name, addr, mod);
		p = nl + 1;
	}
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
	rc = parse_kallsyms(tep, buf, len);
out:
	free(buf);
	fclose(f);
	return rc;
}
