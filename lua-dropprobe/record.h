/*
 * record.h - the one shape of a record, whatever read it: a table with
 * name, system, comm, pid, cpu, ts, flags, fields (named as the event's
 * format names them), and optionally payload (text sources), stack,
 * lost_before and packet (the headers a drop probe fetched, packet.c). Its keys are Lua strings made once (registry
 * "dropprobe.keys", [0] the base record metatable) and set by index.
 */
#ifndef DROPPROBE_RECORD_H
#define DROPPROBE_RECORD_H

#include "util.h"

enum dp_key {
	DP_K_NAME = 1, DP_K_SYSTEM, DP_K_COMM, DP_K_PID, DP_K_CPU, DP_K_TS, DP_K_FLAGS,
	DP_K_PAYLOAD, DP_K_FIELDS, DP_K_STACK, DP_K_LOST_BEFORE, DP_K_PACKET, DP_K_MAX
};
#define DP_KEYS_REG "dropprobe.keys"

/* t[key k] = value: the value on top, the table under it (popped: value) */
static inline void dp_setkey(lua_State *L, int keys, int k)
{
	lua_rawgeti(L, keys, k);
	lua_insert(L, -2);
	lua_rawset(L, -3);
}

/* Push the keys table (for the duration of a read). */
int dp_push_keys(lua_State *L);

/* Push a new record metatable for one source: the base metatable's
 * entries (__tostring, __name) and __order = {} ("system:name" -> field
 * names in format order), which the source fills so that a record prints
 * with the formats it was decoded with. */
void dp_record_meta(lua_State *L);

/* The one normalisation of a drop's stack: how many frames at the top of
 * the stack table at idx are the tracing machinery or the function that
 * freed the packet (the last freeing function among the first 12, and the
 * machinery after it; none when the first frame is an ordinary one, so a
 * trimmed stack stays as it is); dp_stack_trim removes them in place, so
 * that a stack starts at the function that dropped it (as a kernel hist
 * stack does). */
int dp_stack_skip(lua_State *L, int idx);
void dp_stack_trim(lua_State *L, int idx);
/* The rule looks at most this far: the last freeing function among the
 * first DP_SKIP_FREEING frames, and at most DP_SKIP_MAX frames left out in
 * all (DP_SKIP_FREEING where there is no freeing function). */
#define DP_SKIP_FREEING 12
#define DP_SKIP_MAX 24
/* The same count over frames not yet in a table: frame i is the n[i]
 * bytes at f[i]; the first count frames of a stack (the first DP_SKIP_MAX
 * are all the rule looks at). */
int dp_frames_skip(const char *const *f, const size_t *n, int count);

/* core.Record, core.drop_frames, the keys table. */
void dp_record_open(lua_State *L);

#endif
