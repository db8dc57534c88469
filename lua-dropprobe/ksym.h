/*
 * ksym.h - kernel addresses by name: the one symbolizer of records,
 * counts and text ("tcp_v4_rcv+0x99/0x1400", as the kernel prints %pS),
 * from the kallsyms a tep holds.
 */
#ifndef DROPPROBE_KSYM_H
#define DROPPROBE_KSYM_H

#include <stddef.h>

struct tep_handle;

/* "sym+0xoff/0xsize" (or "sym" without offset) of addr into buf; 1 when
 * the tep's kallsyms names it, else 0 and "0x<addr>". */
int dp_ksym_format(struct tep_handle *tep, unsigned long long addr, int offset, char *buf, size_t len);
/* Load /proc/kallsyms into the tep (once per tep is the caller's to keep);
 * 0, or -1 where it cannot be read. */
int dp_ksym_load(struct tep_handle *tep);

#endif
