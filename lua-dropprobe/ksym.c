/*
 * ksym.c - kernel addresses by name (see ksym.h).
 */
#include "ksym.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event-parse.h>

#include "lines.h"

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
		/* libtraceevent sorts its symbols at the first lookup: now */
		tep_find_function(k->tep, 0);
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

/* What the lines of /proc/kallsyms go into, and whether one was no
 * kallsyms line (those after it are left, as tep_parse_kallsyms stops). */
struct kread {
	struct tep_handle *tep;
	int bad;
};

/*
 * One line of kallsyms text into tep: "addr type name[\t[mod]]", as
 * tep_parse_kallsyms reads it (its sscanf "%llx %c %s\t[%s" costs twice
 * as much): the name is the word after the type, the module the word
 * after a tab and '[' less its last character (']'), and absolute symbols
 * ('A', 'a': per-CPU offsets on x86-64) and names starting with '$'
 * (arm's mapping symbols) are left out. Lines are taken in the order of
 * the text, as there, so that of several symbols at one address the same
 * one names it. An empty line is skipped (strtok_r skips it there).
 */
static void kallsyms_line(void *ctx, const char *text, size_t n)
{
	struct kread *k = ctx;
	char line[1024], *p = line, *q, *name, *name_end, *mod = NULL;
	unsigned long long addr;
	char type;
	if (k->bad || n == 0)
		return;
	if (n >= sizeof(line)) { /* a name is at most 512 bytes there */
		k->bad = 1;
		return;
	}
	memcpy(line, text, n);
	line[n] = 0;
	addr = strtoull(p, &q, 16);
	if (q == p)
		goto bad;
	while (blank(*q))
		q++;
	type = *q;
	if (!type)
		goto bad;
	q++;
	while (blank(*q))
		q++;
	name = q;
	while (*q && !blank(*q))
		q++;
	if (q == name)
		goto bad;
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
		tep_register_function(k->tep, name, addr, mod);
	return;
bad:
	k->bad = 1;
}

int dp_ksym_load(struct tep_handle *tep)
{
	return dp_ksym_load_file(tep, "/proc/kallsyms");
}

int dp_ksym_load_file(struct tep_handle *tep, const char *path)
{
	/* read and taken a line at a time through one small buffer: the
	 * text (5 MB on a distribution kernel) is never held whole */
	struct kread k = {.tep = tep};
	struct dp_lines b;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (dp_lines_init(&b, 1 << 16, 0) < 0) {
		close(fd);
		return -1;
	}
	while ((r = dp_lines_read(&b, fd)) > 0)
		dp_lines_each(&b, 0, kallsyms_line, &k);
	if (r == 0)
		dp_lines_each(&b, 1, kallsyms_line, &k);
	dp_lines_free(&b);
	close(fd);
	return r < 0 || k.bad ? -1 : 0;
}
