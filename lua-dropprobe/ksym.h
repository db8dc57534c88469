/*
 * ksym.h - kernel addresses by name: the one symbolizer of records,
 * counts and text ("tcp_v4_rcv+0x99/0x1400", as the kernel prints %pS),
 * from the kallsyms a tep holds.
 */
#ifndef DROPPROBE_KSYM_H
#define DROPPROBE_KSYM_H

#include <stddef.h>

struct tep_handle;

/*
 * The symbols of one tep. A tep built from this kernel's formats without
 * its kallsyms (a live reader's, rawbuf.c) has /proc/kallsyms read into it
 * at the first lookup (a counter's) or by dp_ksyms_need (a record
 * reader's, when it opens), so a counter that never names an address does
 * not pay for it; a trace.dat's tep holds the file's own and is used as
 * is. Every lookup of that tep must go through dp_ksym_format or come
 * after dp_ksyms_need: libtraceevent sorts the symbols at its first lookup
 * and ignores any added after it.
 */
struct dp_ksyms {
	struct tep_handle *tep;
	int pending; /* 1: /proc/kallsyms still to be read into tep */
};

/* Set k up over tep; with lazy, /proc/kallsyms is read into tep at the
 * first dp_ksym_format (tep must hold no symbols yet). */
void dp_ksyms_init(struct dp_ksyms *k, struct tep_handle *tep, int lazy);
/* Read (and sort) the symbols k still waits for now: before the tep
 * names an address other than through dp_ksym_format (a libtraceevent
 * filter comparing a pointer field with a string names it by
 * tep_find_function), and before a live reader's first read, so that a
 * flood is not held up at its first record (about 0.07 s). */
void dp_ksyms_need(struct dp_ksyms *k);
/* "sym+0xoff/0xsize" (or "sym" without offset) of addr into buf; 1 when
 * the tep's kallsyms names it, else 0 and "0x<addr>". */
int dp_ksym_format(struct dp_ksyms *k, unsigned long long addr, int offset, char *buf, size_t len);
/* Load /proc/kallsyms into the tep (once per tep is the caller's to keep),
 * the symbols libtraceevent's tep_parse_kallsyms takes, registered in the
 * same order; 0, or -1 where it cannot be read. */
int dp_ksym_load(struct tep_handle *tep);
/* The same from a file of kallsyms text (spec/c/ksym_driver.c). */
int dp_ksym_load_file(struct tep_handle *tep, const char *path);

#endif
