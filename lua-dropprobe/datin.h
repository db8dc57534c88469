/*
 * datin.h - a trace.dat as an input (libtracecmd): the top-level buffer
 * and then every instance buffer of the file, each one's events in time
 * order across its CPUs, handed to a sink (sink.h) with the lost marks
 * the file records. A record reader (src_dat.c) and a counter (count.c)
 * read a file through it.
 */
#ifndef DROPPROBE_DATIN_H
#define DROPPROBE_DATIN_H

#include "ksym.h"
#include "sink.h"

struct tracecmd_input;
struct tep_handle;

struct dp_datin {
	struct tracecmd_input **inputs; /* the top buffer, then its instances */
	int ninputs, cur;
	struct dp_ksyms syms; /* the file's symbols (the kallsyms it saved) */
};

/* Open path: NULL, or what failed (the system's word for a file that
 * cannot be opened); dp_datin_close either way. The
 * file's formats are dp_datin_tep's until dp_datin_close. */
const char *dp_datin_open(struct dp_datin *d, const char *path);
struct tep_handle *dp_datin_tep(const struct dp_datin *d);
/* Hand the sink the events from where the last feed stopped until the
 * sink asks to stop or the file ends (a boundary between buffers).
 * Returns the events handed out: 0 at the end of the file. */
long dp_datin_feed(struct dp_datin *d, struct dp_sink *k);
/* Release it (idempotent; also for a half-opened one). */
void dp_datin_close(struct dp_datin *d);

#endif
