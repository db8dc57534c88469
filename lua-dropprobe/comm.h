/*
 * comm.h - process names a live source did not know when it made a
 * record ("<...>": a pid newer than the kernel's saved_cmdlines as last
 * read). Noted while decoding, looked up after the batch (saved_cmdlines
 * reloaded, at most a few times a second, then /proc), put into the records
 * still waiting and into the source's cache; a name still unknown is
 * tried again next time, never cached as "<...>".
 */
#ifndef DROPPROBE_COMM_H
#define DROPPROBE_COMM_H

#include "util.h"

struct tep_handle;

struct dp_miss {
	int ref;
	int pid;
};

struct dp_misses {
	struct dp_miss *v;
	int n, cap;
	double last_reload;
};

void dp_misses_add(lua_State *L, struct dp_misses *m, int ref, int pid);
/* Look the missed pids up (tep may be NULL: /proc only); records in refs,
 * names cached in commtab (stack indexes). */
void dp_misses_fix(lua_State *L, struct dp_misses *m, struct tep_handle *tep, int refs,
		   int keys, int commtab);
void dp_misses_free(struct dp_misses *m);

#endif
