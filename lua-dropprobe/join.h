/*
 * join.h - the joiner: between a source that decodes records and the
 * reader that hands them out. It owns the per-CPU record that may still
 * get a stack, joins a stack to it, carries the kernel's lost marks to the
 * next record of their CPU, and keeps the records in order in one queue.
 * No I/O, no idea where records come from.
 *
 * Records wait in a Lua table (refs, passed by stack index); the keys
 * table (record.h) is passed the same way.
 */
#ifndef DROPPROBE_JOIN_H
#define DROPPROBE_JOIN_H

#include "util.h"

/*
 * Per CPU, what waits for the stack that may follow it on that CPU: a
 * handle (a record's ref in the joiner, a counter's CPU slot) or -1. The
 * one rule of joining a stack, for records and counts alike: a stack
 * belongs to the last waiting entry of its CPU; the CPU's next entry ends
 * the wait; a stack with nothing waiting is an orphan. No Lua here.
 */
struct dp_waits {
	int n;     /* CPUs 0..n-1 have a slot */
	int *h;    /* per CPU: the handle waiting, or -1 */
	long long orphans; /* stacks that came with nothing waiting */
};

void dp_waits_free(struct dp_waits *w);
/* Room for cpu (0..65535): 0, or -1 (out of range, out of memory). */
int dp_waits_room(struct dp_waits *w, int cpu);
/* h now waits on cpu (which has room); returns what waited there before
 * (its wait over, without a stack), or -1. */
int dp_waits_put(struct dp_waits *w, int cpu, int h);
/* A stack came on cpu: the handle it belongs to (no longer waiting), or
 * -1 (an orphan, counted). */
int dp_waits_take(struct dp_waits *w, int cpu);
/* The CPU moved on without a stack: what waited there (no longer), or -1. */
int dp_waits_end(struct dp_waits *w, int cpu);
/* Whether h waits on cpu. */
static inline int dp_waits_is(const struct dp_waits *w, int cpu, int h)
{
	return cpu >= 0 && cpu < w->n && w->h[cpu] == h;
}

struct dp_qent {
	int ref; /* in the refs table */
	int cpu;
};

struct dp_join {
	int ncpu;            /* size of the per-CPU arrays */
	struct dp_waits waits; /* per CPU: the record (its ref) that may still get a stack */
	long long *lost_cpu; /* per CPU: events the kernel reported lost */
	long long *mark_cpu; /* per CPU: lost count for that CPU's next record */
	long long *read_cpu; /* per CPU: records */
	int open_ref;        /* record whose stack frames are still arriving */
	struct dp_qent *q;   /* records in order */
	size_t qhead, qlen, qcap;
	long long nread, lost;
	int raw_stacks;      /* keep stacks as given (else dp_stack_trim) */
	/* slots of the refs table: 1..top used or free, the free ones listed
	 * (a record in and out costs two table writes, not luaL_ref's eight) */
	int *free_refs;
	int nfree, top_ref, cap_refs;
};

void dp_join_init(struct dp_join *j);
void dp_join_free(struct dp_join *j);
/* Size the per-CPU arrays for CPUs 0..ncpu-1 (grows only). */
void dp_join_cpus(lua_State *L, struct dp_join *j, int ncpu);
/* Queue the record on top (popped); it carries its CPU's lost mark. With
 * hold, it waits for a stack (the CPU's next entry, or release). Returns
 * its ref in refs. */
int dp_join_record(lua_State *L, struct dp_join *j, int refs, int keys, int cpu, int hold);
/* Give the complete stack table on top (popped) to the CPU's waiting
 * record. Returns 0 when no record waited (an orphan stack). It starts at
 * the function that dropped (dp_stack_trim) unless raw_stacks. */
int dp_join_stack(lua_State *L, struct dp_join *j, int refs, int keys, int cpu);
/* A stack whose frames are still arriving, for the CPU's waiting record:
 * its ref in refs (the record waits for dp_join_stack_done, which leaves
 * the stack to the caller: the caller sets it), or LUA_NOREF (an orphan
 * stack, counted). */
int dp_join_stack_open(struct dp_join *j, int cpu);
void dp_join_stack_done(lua_State *L, struct dp_join *j, int refs, int keys);
/* The kernel lost n events on cpu before what comes next (n < 0: unknown). */
void dp_join_lost(lua_State *L, struct dp_join *j, int cpu, long long n);
/* Push the next record that is complete; 0 when there is none. */
int dp_join_pop(lua_State *L, struct dp_join *j, int refs);
/* Whether a record waits for a stack. */
int dp_join_waiting(const struct dp_join *j);
/* No record waits any longer (grace expired, end of input). */
void dp_join_release(struct dp_join *j);
/* Set read, lost_marked, orphan_stacks, lost_cpu, read_cpu in the table on top. */
void dp_join_stats(lua_State *L, const struct dp_join *j);

#endif
