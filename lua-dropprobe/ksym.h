/*
 * ksym.h - kernel addresses by name: the one symbolizer of records,
 * counts and text ("tcp_v4_rcv+0x99/0x1400", as the kernel prints %pS),
 * from this kernel's /proc/kallsyms or the kallsyms a tep holds.
 */
#ifndef DROPPROBE_KSYM_H
#define DROPPROBE_KSYM_H

#include <stddef.h>

struct tep_handle;
struct dp_ksym_ent;

/*
 * The symbols of one tep. A tep built from this kernel's formats without
 * its kallsyms (a live reader's, rawbuf.c) gets /proc/kallsyms read into
 * a table of this struct's own at the first lookup (a counter's) or by
 * dp_ksyms_need (a record reader's, when it opens), so a counter that
 * never names an address does not pay for it. The table is the tep's
 * function resolver from then on (tep_set_function_resolver): whatever
 * libtraceevent names (a filter that compares a pointer field with a
 * function's name) is named from it, as dp_ksym_format names it. A
 * trace.dat's tep holds the file's own symbols and is used as is.
 */
struct dp_ksyms {
	struct tep_handle *tep;
	int pending; /* 1: /proc/kallsyms still to be read */
	/* the symbols read, in the order libtraceevent's table has them, and
	 * an entry after the last (address 0); n: the symbols */
	struct dp_ksym_ent *ent;
	size_t n;
	char *names; /* their names and modules, one after the other */
};

/* Set k up over tep; with lazy, /proc/kallsyms is read at the first
 * dp_ksym_format (tep must hold no symbols: its own are not consulted
 * once k has read them). */
void dp_ksyms_init(struct dp_ksyms *k, struct tep_handle *tep, int lazy);
/* Read the symbols k still waits for now: before the tep names an
 * address other than through dp_ksym_format (a libtraceevent filter),
 * and before a live reader's first read, so that a flood is not held up
 * at its first record (about 0.05 s). */
void dp_ksyms_need(struct dp_ksyms *k);
/* The table k read, and the tep's resolver with it, gone: before the tep
 * is freed (the tep is not freed here). k is set up empty again. */
void dp_ksyms_free(struct dp_ksyms *k);
/* The symbol that holds addr, as libtraceevent's tep_find_function_info
 * finds it (the same name, start and size, for any address); 1 when one
 * does, else 0. */
int dp_ksym_find(struct dp_ksyms *k, unsigned long long addr, const char **name,
		 unsigned long long *start, unsigned long *size);
/* "sym+0xoff/0xsize" (or "sym" without offset) of addr into buf; 1 when
 * kallsyms names it, else 0 and "0x<addr>". */
int dp_ksym_format(struct dp_ksyms *k, unsigned long long addr, int offset, char *buf, size_t len);
/* Read a file of kallsyms text (/proc/kallsyms: dp_ksyms_need) into k,
 * the symbols libtraceevent's tep_parse_kallsyms takes, and make the
 * table k->tep's resolver (when k has a tep); 0, or -1 where it cannot
 * be read, a line is no kallsyms line or memory ran out (the lines before
 * it are kept: there a bad line ends the reading too), or the resolver
 * cannot be set (then nothing is kept). k must hold no table yet. */
int dp_ksym_load_file(struct dp_ksyms *k, const char *path);

#endif
