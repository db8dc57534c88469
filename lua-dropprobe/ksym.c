/*
 * ksym.c - kernel addresses by name (see ksym.h).
 */
#include "ksym.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event-parse.h>

#include "lines.h"
#include "parse.h"

/* One symbol: its address and where its name (and module: 0, none)
 * start in names */
struct dp_ksym_ent {
	unsigned long long addr;
	uint32_t name, mod;
};

void dp_ksyms_init(struct dp_ksyms *k, struct tep_handle *tep, int lazy)
{
	k->tep = tep;
	k->pending = tep && lazy;
	k->ent = NULL;
	k->n = 0;
	k->names = NULL;
}

void dp_ksyms_need(struct dp_ksyms *k)
{
	if (k && k->tep && k->pending) {
		k->pending = 0; /* once, whether it could be read or not */
		dp_ksym_load_file(k, "/proc/kallsyms");
	}
}

void dp_ksyms_free(struct dp_ksyms *k)
{
	if (k->tep && k->ent)
		tep_reset_function_resolver(k->tep);
	free(k->ent);
	free(k->names);
	dp_ksyms_init(k, k->tep, 0);
}

/* libtraceevent's bsearch comparison (func_bcmp): the key's address is the
 * symbol's, or between it and the next one's (the entry after the last
 * has address 0: past the last symbol only its own address is named) */
static int in_between(const void *key, const void *elem)
{
	const struct dp_ksym_ent *a = key, *b = elem;
	if (a->addr == b->addr || (a->addr > b->addr && a->addr < b[1].addr))
		return 0;
	return a->addr < b->addr ? -1 : 1;
}

static const struct dp_ksym_ent *lookup(const struct dp_ksyms *k, unsigned long long addr)
{
	struct dp_ksym_ent key = {.addr = addr};
	if (!k->n)
		return NULL;
	/* the same search over the same order as libtraceevent's: at an
	 * address several symbols share, the same one names it */
	return bsearch(&key, k->ent, k->n, sizeof(*k->ent), in_between);
}

int dp_ksym_find(struct dp_ksyms *k, unsigned long long addr, const char **name,
		 unsigned long long *start, unsigned long *size)
{
	const struct dp_ksym_ent *e;
	dp_ksyms_need(k);
	if (!k->ent)
		return k->tep && tep_find_function_info(k->tep, addr, name, start, size) && *name;
	if (!(e = lookup(k, addr)))
		return 0;
	*name = k->names + e->name;
	*start = e->addr;
	*size = (unsigned long)(e[1].addr - e->addr); /* as libtraceevent gives it */
	return 1;
}

/* The tep's function resolver: the table's symbol at *addrp */
static char *resolve(void *priv, unsigned long long *addrp, char **modp)
{
	struct dp_ksyms *k = priv;
	const struct dp_ksym_ent *e = lookup(k, *addrp);
	if (!e)
		return NULL;
	*addrp = e->addr;
	*modp = e->mod ? k->names + e->mod : NULL;
	return k->names + e->name;
}

int dp_ksym_format(struct dp_ksyms *k, unsigned long long addr, int offset, char *buf, size_t len)
{
	const char *name = NULL;
	unsigned long long start;
	unsigned long size;
	if (addr && k && dp_ksym_find(k, addr, &name, &start, &size)) {
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

/* What the lines of /proc/kallsyms go into: the table and its names
 * while they grow, and whether one was no kallsyms line (those after it
 * are left, as tep_parse_kallsyms stops) */
struct kread {
	struct dp_ksym_ent *ent;
	size_t n, cap;
	char *names;
	size_t len, room;
	int bad;
};

/* name (and mod) into the names; its offset, or 0 when out of memory */
static uint32_t keep_name(struct kread *r, const char *s, size_t n)
{
	uint32_t at = (uint32_t)r->len;
	if (r->len + n + 1 > r->room) {
		size_t room = r->room ? r->room * 2 : 1 << 20;
		char *p;
		while (room < r->len + n + 1)
			room *= 2;
		if (room > UINT32_MAX || !(p = realloc(r->names, room)))
			return 0;
		r->names = p;
		r->room = room;
	}
	memcpy(r->names + r->len, s, n);
	r->names[r->len + n] = 0;
	r->len += n + 1;
	return at;
}

static void add(struct kread *r, unsigned long long addr, const char *name, size_t n, const char *mod,
		size_t modn)
{
	struct dp_ksym_ent *e;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 1 << 16;
		if (!(e = realloc(r->ent, (cap + 1) * sizeof(*e)))) { /* + 1: the entry after */
			r->bad = 1;
			return;
		}
		r->ent = e;
		r->cap = cap;
	}
	e = &r->ent[r->n];
	e->addr = addr;
	e->mod = 0;
	if (!(e->name = keep_name(r, name, n)) || (mod && !(e->mod = keep_name(r, mod, modn)))) {
		r->bad = 1;
		return;
	}
	r->n++;
}

/*
 * One line of kallsyms text: "addr type name[\t[mod]]", as
 * tep_parse_kallsyms reads it (with sscanf, which costs twice as much):
 * the name is the word after the type, the module the word after a tab
 * and '[' less its last character (']'), and absolute symbols ('A', 'a':
 * per-CPU offsets on x86-64) and names starting with '$' (arm's mapping
 * symbols) are left out. An empty line is skipped (strtok_r skips it
 * there).
 */
static void kallsyms_line(void *ctx, const char *text, size_t n)
{
	struct kread *r = ctx;
	char line[1024], *p = line, *q, *name, *name_end, *mod = NULL;
	unsigned long long addr;
	size_t modn = 0, d;
	char type;
	if (r->bad || n == 0)
		return;
	if (n >= sizeof(line)) { /* a name is at most 512 bytes there */
		r->bad = 1;
		return;
	}
	memcpy(line, text, n);
	line[n] = 0;
	/* up to 16 hex digits and a blank by parse.c (strtoull took a tenth
	 * of the reading); anything else as strtoull reads it */
	d = strspn(p, "0123456789abcdefABCDEF");
	if (d > 0 && blank(p[d]) && dp_span_hex((struct dp_span){p, d}, &addr))
		q = p + d;
	else
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
			mod = m;
			modn = (size_t)(e - m) - 1;
		}
	}
	if (name[0] != '$' && type != 'A' && type != 'a')
		add(r, addr, name, (size_t)(name_end - name), mod, modn);
	return;
bad:
	r->bad = 1;
}

/* libtraceevent's order (func_map_init): its list holds the symbol
 * registered last first, and glibc's qsort (a merge sort: stable) sorts it
 * by address; so by address, and at one address the later line first.
 * Names are kept in the order of the lines. */
static int tep_order(const void *a, const void *b)
{
	const struct dp_ksym_ent *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->name > y->name ? -1 : x->name < y->name;
}

static void order(struct dp_ksym_ent *e, size_t n)
{
	size_t i = 1;
	while (i < n && e[i].addr >= e[i - 1].addr)
		i++;
	if (i < n) {
		qsort(e, n, sizeof(*e), tep_order);
		return;
	}
	/* in order already (the kernel's own part always is): each run of
	 * one address turned round */
	for (i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && e[j].addr == e[i].addr)
			j++;
		for (size_t a = i, b = j - 1; a < b; a++, b--) {
			struct dp_ksym_ent t = e[a];
			e[a] = e[b];
			e[b] = t;
		}
		i = j;
	}
}

int dp_ksym_load_file(struct dp_ksyms *k, const char *path)
{
	/* read and taken a line at a time through one small buffer: the
	 * text (5 MB on a distribution kernel) is never held whole */
	struct kread r = {0};
	struct dp_lines b;
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* names start with an empty one: offset 0 is "no module" */
	if (dp_lines_init(&b, DP_LINES_BUF, 0) < 0 || !(r.names = calloc(1, r.room = 1 << 20))) {
		dp_lines_free(&b);
		close(fd);
		return -1;
	}
	r.len = 1;
	while ((got = dp_lines_read(&b, fd)) > 0)
		dp_lines_each(&b, 0, kallsyms_line, &r);
	if (got == 0)
		dp_lines_each(&b, 1, kallsyms_line, &r);
	dp_lines_free(&b);
	close(fd);
	if (r.n && (!k->tep || tep_set_function_resolver(k->tep, resolve, k) == 0)) {
		order(r.ent, r.n);
		r.ent[r.n].addr = 0; /* the entry after the last, as there */
		r.ent[r.n].name = r.ent[r.n].mod = 0;
		k->ent = r.ent;
		k->n = r.n;
		k->names = r.names;
		return got < 0 || r.bad ? -1 : 0;
	}
	/* none, or no resolver: no symbols for the tep nor for k, rather
	 * than some lookups naming what others do not */
	free(r.ent);
	free(r.names);
	return r.n ? -1 : (got < 0 || r.bad ? -1 : 0);
}
