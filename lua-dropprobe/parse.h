/*
 * parse.h - the text trace parser: one line of `trace`/`trace_pipe` output
 * at a time, pure C (no Lua), so that it can be fuzzed and benchmarked alone.
 * Nothing here allocates: results point into the caller's line.
 */
#ifndef DROPPROBE_PARSE_H
#define DROPPROBE_PARSE_H

#include <stddef.h>
#include <stdint.h>

struct dp_span {
	const char *p;
	size_t n;
};

enum dp_line_kind {
	DP_LINE_EMPTY,   /* blank */
	DP_LINE_COMMENT, /* "# tracer: nop" and the other header lines */
	DP_LINE_EVENT,   /* "comm-pid [cpu] flags ts: name: payload" */
	DP_LINE_STACK,   /* an event line whose name is "<stack trace>" */
	DP_LINE_USTACK,  /* "<user stack trace>" */
	DP_LINE_FRAME,   /* " => symbol+0x1/0x2" */
	DP_LINE_LOST,    /* "CPU:1 [LOST 2668 EVENTS]" */
	DP_LINE_BAD      /* anything else: counted, never fatal */
};

struct dp_line {
	enum dp_line_kind kind;
	struct dp_span comm;
	long pid;
	int cpu;
	struct dp_span flags;
	uint64_t ts_ns;  /* timestamp in ns, as printed (us or ns precision) */
	struct dp_span name;
	struct dp_span payload;
	struct dp_span frame; /* DP_LINE_FRAME */
	/* a function tracer line, "<ip> <-<parent_ip>": name is "function",
	 * these hold the two symbols (the fields of ftrace:function) */
	struct dp_span fn_ip, fn_parent;
	long long lost;       /* DP_LINE_LOST; -1 when the kernel gave no count */
};

/* The highest CPU number a trace line may carry. */
#define DP_CPU_MAX 65535

/* Parse one line (without its '\n'; a trailing '\r' is ignored). A line
 * whose CPU is above DP_CPU_MAX is DP_LINE_BAD. */
enum dp_line_kind dp_parse_line(const char *s, size_t n, struct dp_line *out);

/*
 * Walk the "key=value" pairs of an event payload. Also takes "key: value"
 * (kfree_skb prints "reason: NO_SOCKET"). A trailing ',' on a value is
 * dropped. Returns 1 with key/val set, 0 at the end. *pos starts at 0.
 */
int dp_payload_next(struct dp_span payload, size_t *pos, struct dp_span *key,
		    struct dp_span *val);

/* A span that is a plain decimal integer (optional '-'), into *v. */
int dp_span_integer(struct dp_span s, long long *v);

/*
 * A printed number as the record gives it, the same from text as from the
 * binary buffers: DP_NUM_INT (into *v) for a decimal or 0x-hex number that
 * fits a signed 64-bit integer; DP_NUM_WIDE (into *u) for an unsigned one
 * beyond it, and for 16 hex digits as %p prints an address (always: an
 * address stays an address, even 0000000000000000); 0 for anything else.
 */
enum { DP_NUM_NONE = 0, DP_NUM_INT, DP_NUM_WIDE };
int dp_span_number(struct dp_span s, long long *v, unsigned long long *u);

/* v as 16 lowercase hex digits (no terminator): an address as %p prints it
 * unhashed, the one representation of a pointer in a record. */
void dp_hex16(char out[16], unsigned long long v);

/*
 * Match a payload against a print format's literal text: lits[i] is the
 * text before conversion i, tail what follows the last. Each value runs to
 * the first occurrence of the next literal (the last to where tail ends
 * the payload). Returns 1 with vals[0..n-1] set, 0 when the payload does
 * not have that shape (or two conversions touch: nothing to split at).
 */
int dp_template_match(struct dp_span payload, const struct dp_span *lits, int n,
		      struct dp_span tail, struct dp_span *vals);

/* A span of hex digits (an optional 0x) as %x prints it, into *u. */
int dp_span_hex(struct dp_span s, unsigned long long *u);

#endif
