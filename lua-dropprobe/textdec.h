/*
 * textdec.h - the text decoder: lines of `trace`/`trace_pipe` text (parsed
 * by parse.c) into records of the one shape (record.h). The kernel prints
 * an event through its print format; matching the payload against that
 * format's literal text gives each printed value back its field name
 * ("src=127.0.0.1:9" is saddr, "From 127.0.0.1:5 to ..." sport and
 * daddr), so text records name fields as raw ones do. Formats are read
 * once per event from a tracefs directory; without one, a payload's
 * "label=value" pairs are the fields.
 */
#ifndef DROPPROBE_TEXTDEC_H
#define DROPPROBE_TEXTDEC_H

#include <stddef.h>

#include "comm.h"
#include "ksym.h"
#include "lines.h"
#include "source.h"

struct tep_handle;

struct dp_textdec {
	struct dp_lines lines; /* what was read, handed out line by line */
	int collecting; /* a stack's frames are arriving */
	char *frames;   /* its frames so far, one a line */
	size_t frames_len, frames_cap;
	int live;       /* a live pipe: unknown comms are looked up after the batch */
	long long bad_lines;
	struct tep_handle *tep; /* the formats read so far */
	struct dp_ksyms syms;   /* tep's symbols, from /proc/kallsyms at the first code address */
	char *formats_dir;      /* tracefs directory to read them from, or NULL */
	struct dp_misses misses;
};

/* 0, or -1 (out of memory). formats_dir may be NULL. */
int dp_textdec_init(struct dp_textdec *t, const char *formats_dir, int live);
void dp_textdec_free(struct dp_textdec *t);
/* Read once from fd (a live trace_pipe, a saved file): as dp_lines_read. */
ssize_t dp_textdec_read(struct dp_textdec *t, int fd);
/* how a feed ends: the last partial line is a line too (end of input);
 * what was read ends on an entry boundary (a trace_pipe read) */
#define DP_TEXT_FINAL 1
#define DP_TEXT_ENTRIES 2

/*
 * Turn the complete lines into records for the joiner (how: DP_TEXT_
 * flags). hold: records wait for a stack that may follow. The
 * source's own table (f->own) keeps names (event -> system), syms (event
 * -> { field = {[n]=name} }) and this decoder's caches.
 */
void dp_textdec_feed(lua_State *L, struct dp_textdec *t, struct dp_fill *f, int hold,
		     int how);
void dp_textdec_stats(lua_State *L, struct dp_textdec *t);

#endif
