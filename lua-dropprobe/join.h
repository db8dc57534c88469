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

struct dp_qent {
	int ref; /* in the refs table */
	int cpu;
};

struct dp_join {
	int ncpu;            /* size of the per-CPU arrays */
	int *pending;        /* per CPU: the record that may still get a stack */
	long long *lost_cpu; /* per CPU: events the kernel reported lost */
	long long *mark_cpu; /* per CPU: lost count for that CPU's next record */
	long long *read_cpu; /* per CPU: records */
	int open_ref;        /* record whose stack frames are still arriving */
	struct dp_qent *q;   /* records in order */
	size_t qhead, qlen, qcap;
	long long nread, lost, orphan_stacks;
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
