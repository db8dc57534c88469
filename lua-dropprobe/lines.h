/*
 * lines.h - trace text as it is read: a buffer that reads fill and that
 * hands out each complete line, for every reader of text (a live
 * trace_pipe and a saved file into records, textdec.c; a saved file into
 * counts, count.c). Plain C, no Lua.
 */
#ifndef DROPPROBE_LINES_H
#define DROPPROBE_LINES_H

#include <stddef.h>
#include <sys/types.h>

/* The buffer of every reader of trace text: a longer line is no trace
 * line (the kernel prints an entry into one page), and every reader of
 * the same text leaves the same lines out. */
#define DP_LINES_BUF 65536

struct dp_lines {
	char *buf;
	size_t len, cap;
	size_t done;        /* bytes handed out already (a handler that raised) */
	long long overlong; /* lines longer than the buffer, left out */
	size_t read_max;    /* what one read may add (0: all the space) */
};

/* A buffer of cap bytes whose reads add at most read_max (0: all the
 * space); 0, or -1 (out of memory). */
int dp_lines_init(struct dp_lines *b, size_t cap, size_t read_max);
void dp_lines_free(struct dp_lines *b);
/* Read once from fd into the free space (EINTR retried): bytes read, 0
 * at the end, -1 (errno; ENOBUFS: no space, the lines were not handed
 * out). Hand the lines out after each read: that always leaves space for
 * the next. */
ssize_t dp_lines_read(struct dp_lines *b, int fd);
typedef void (*dp_line_fn)(void *ctx, const char *p, size_t n);
/* Hand fn each complete line (without its '\n'), and with final the
 * partial one at the end too; what is left waits for more. A line is
 * taken before fn sees it: if fn raises (a Lua error), the next call goes
 * on after it. A line that fills the whole buffer is no trace line: left
 * out, counted. */
void dp_lines_each(struct dp_lines *b, int final, dp_line_fn fn, void *ctx);

#endif
