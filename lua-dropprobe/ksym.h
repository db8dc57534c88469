/*
 * ksym.h - kernel addresses as the kernel prints them (%pS), from
 * /proc/kallsyms through libtraceevent.
 */
#ifndef DROPPROBE_KSYM_H
#define DROPPROBE_KSYM_H

#include <stddef.h>

struct tep_handle;

/* A tep holding only /proc/kallsyms (for text mode, which has no event
 * formats loaded), or NULL when it cannot be read. */
struct tep_handle *dp_ksym_load(void);

/* "sym+0xoff/0xsize" for addr into buf; 0 when no symbol covers it. */
int dp_ksym_format(struct tep_handle *tep, unsigned long long addr, char *buf, size_t len);

#endif
