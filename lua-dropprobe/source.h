/*
 * source.h - what a record source gives the Pipe (pipe.c): fill, fd,
 * stats, close. A source decodes what it reads into records and hands
 * them to the joiner it is given; the Pipe hands them out. Each source is
 * one file (src_text.c, src_file.c, src_raw.c, src_dat.c) with its Lua
 * constructor, and one line in core.c.
 */
#ifndef DROPPROBE_SOURCE_H
#define DROPPROBE_SOURCE_H

#include "join.h"

/* What a fill works with: stack indexes valid during the call. */
struct dp_fill {
	struct dp_join *join;
	int refs; /* records waiting in the joiner */
	int keys; /* record keys (record.h) */
	int own;  /* the source's own Lua table (given to dp_pipe_new) */
};

enum {
	DP_FILL_EOF = -2,  /* nothing more will come */
	DP_FILL_INTR = -1, /* a signal ended the wait */
	DP_FILL_NONE = 0,  /* nothing came within ms */
	DP_FILL_DATA = 1   /* read something (records may have been queued) */
};

struct dp_source_ops {
	const char *mode; /* "text", "file", "raw", "trace.dat" */
	/* Read what is there, or wait up to ms for something: ms >= 0, the
	 * whole ms the read has left plus one (its timeout, or a joined
	 * record's grace, the nearer), at most max_wait_ms; 0 to drain. */
	int (*fill)(lua_State *L, void *src, struct dp_fill *f, int ms);
	int (*fd)(void *src); /* what to poll, or -1 */
	/* Add the source's own counters to the stats table on top. */
	void (*stats)(lua_State *L, void *src);
	/* Release everything (called once, also for a half-opened source). */
	void (*close)(lua_State *L, void *src);
	int max_wait_ms; /* longest wait of one fill (signals are noticed between) */
};

/*
 * A new Pipe over src (pushed). The table at own becomes the source's own
 * table (what it keeps on the Lua side; own.instance is what
 * pipe:instance() gives). The Pipe owns src from here on: its close calls
 * ops->close. grace: seconds a record waits for its stack.
 */
void dp_pipe_new(lua_State *L, const struct dp_source_ops *ops, void *src, int own,
		 double grace);
/* Close the Pipe at idx (freeing its source) and raise msg. */
int dp_pipe_fail(lua_State *L, int idx, const char *msg);

#endif
