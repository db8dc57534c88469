/*
 * pipe.h - dropprobe.Pipe: a reader of records. Text mode reads an
 * instance's trace_pipe (or a saved trace file) through parse.c; raw mode
 * (raw.c) reads the per-CPU binary buffers through libtraceevent. Both hand
 * out the same record tables through one queue.
 */
#ifndef DROPPROBE_PIPE_H
#define DROPPROBE_PIPE_H

#include <stdint.h>

#include "core.h"

enum dp_pipe_mode { DP_MODE_TEXT, DP_MODE_FILE, DP_MODE_RAW, DP_MODE_DAT };

/* uservalue slots of a Pipe */
#define DP_PIPE_UV_INST 1  /* the Instance (nil for files) */
#define DP_PIPE_UV_REFS 2  /* records waiting to be handed out */
#define DP_PIPE_UV_NAMES 3 /* event name -> system (text mode) */
#define DP_PIPE_UV_SYMS 4  /* event name -> { field = {[n]=name} } for fields the
			    * format names none for (a kprobe's reason) */
#define DP_PIPE_NUV 4

struct dp_raw;

/*
 * Record keys, made once (registry "dropprobe.keys", an array of interned
 * strings; [0] is the record metatable) and fetched by index in the hot
 * loop instead of looked up by C string for every field of every record.
 */
enum dp_key {
	DP_K_NAME = 1, DP_K_SYSTEM, DP_K_COMM, DP_K_PID, DP_K_CPU, DP_K_TS, DP_K_FLAGS,
	DP_K_PAYLOAD, DP_K_FIELDS, DP_K_STACK, DP_K_LOST_BEFORE, DP_K_MAX
};
#define DP_KEYS_REG "dropprobe.keys"

/* t[key k] = value: the value on top, the table under it (popped: value) */
static inline void dp_setkey(lua_State *L, int kidx, int k)
{
	lua_rawgeti(L, kidx, k);
	lua_insert(L, -2);
	lua_rawset(L, -3);
}

struct dp_qent {
	int ref; /* in the refs table */
	int cpu;
};

struct dp_pipe {
	enum dp_pipe_mode mode;
	int closed;
	int fd;
	int eof;
	struct dp_instance *inst;
	/* text assembly */
	char *buf;
	size_t len, cap;
	int ncpu;       /* size of the per-CPU arrays */
	int *pending;   /* per CPU: a record that may still get a stack */
	int stack_ref;  /* record receiving " => " frames, or LUA_NOREF */
	int stack_n;
	int collecting; /* a stack block may continue in the next read */
	long long *lost_cpu; /* events the kernel reported lost, per CPU */
	long long *mark_cpu; /* lost count to put on that CPU's next record */
	/* records ready to hand out, in order */
	struct dp_qent *q;
	size_t qhead, qlen, qcap;
	/* counters */
	long long nread, lost, orphan_stacks, bad_lines;
	double grace; /* seconds a record waits for its stack */
	int kidx;     /* stack index of the keys table during a read */
	int sidx;     /* stack index of the DP_PIPE_UV_SYMS table, or 0 */
	struct dp_raw *raw;
};

struct dp_pipe *dp_check_pipe(lua_State *L, int idx);
/* A new Pipe userdata (pushed), closed until its source is opened. */
struct dp_pipe *dp_pipe_alloc(lua_State *L, enum dp_pipe_mode mode);
/* Grow the per-CPU arrays to hold cpu. */
void dp_pipe_cpus(lua_State *L, struct dp_pipe *p, int cpu);
/* Queue the record table on top of the stack (popped); returns its ref.
 * refs is the absolute index of the refs table. */
int dp_pipe_push(lua_State *L, struct dp_pipe *p, int refs, int cpu);
/* Whether a new record must wait for a stack that may follow it (saved
 * files, or an instance with a stacktrace trigger). */
int dp_pipe_holding(struct dp_pipe *p);
/* The kernel lost n events on cpu before what comes next (n < 0: unknown). */
void dp_pipe_lost(lua_State *L, struct dp_pipe *p, int cpu, long long n);
/* Set rec.lost_before from the CPU's pending mark (record on top). */
void dp_pipe_mark_lost(lua_State *L, struct dp_pipe *p, int cpu);

/* raw.c */
int dp_raw_start(lua_State *L, struct dp_pipe *p, int opts);
/* Read what is there (wait up to ms when nothing is), queue records.
 * Returns 1 when records were queued, 0 on timeout, -1 on EINTR. */
int dp_raw_fill(lua_State *L, struct dp_pipe *p, int refs, int ms);
void dp_raw_close(lua_State *L, struct dp_pipe *p);
int dp_raw_stats(lua_State *L, struct dp_pipe *p);
int dp_raw_fd(struct dp_pipe *p);

#endif
