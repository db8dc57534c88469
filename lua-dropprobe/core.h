/*
 * core.h - the objects of dropprobe.core and what their files share.
 * One C file per object: instance.c, event.c, pipe.c (text records and
 * saved files), raw.c (binary records), format.c, parse.c (pure C).
 */
#ifndef DROPPROBE_CORE_H
#define DROPPROBE_CORE_H

#include "util.h"

#define DP_NAME_MAX 64

/* uservalue slots of an Instance */
#define DP_INST_UV_EVENTS 1 /* "sys:name" -> Event */
#define DP_INST_UV_PIPES 2  /* weak-keyed set of open Pipes */
#define DP_INST_UV_KPROBES 3 /* Kprobes its events use: removed after them */

struct dp_instance {
	struct tracefs_instance *ti;
	char name[DP_NAME_MAX + 1];
	int closed;
	long buffer_kb;
	int stack_triggers; /* stacktrace triggers set through this object */
	int tracer_set;     /* current_tracer was changed: back to nop on close */
	int ftrace_filter_set;
	int nevents;
};

struct dp_event {
	struct dp_instance *inst; /* valid while uservalue 1 holds the Instance */
	char system[DP_NAME_MAX + 1];
	char name[DP_NAME_MAX * 2 + 1];
	char *filter;    /* what this object last wrote, or NULL */
	char **triggers; /* as written, for removal with '!' */
	int ntriggers;
	int enabled;
	int closed;
};

/* Find (or, as root, mount) tracefs; its path into buf. On failure pushes
 * the message and returns -1. (tracefs.c) */
int dp_ensure_tracefs(lua_State *L, char *buf, size_t len);

void dp_instance_open(lua_State *L);
void dp_event_open(lua_State *L);
void dp_pipe_open(lua_State *L);
void dp_raw_open(lua_State *L);
void dp_kprobe_open(lua_State *L);
void dp_btf_open(lua_State *L);
void dp_tracefs_open(lua_State *L);
/* The tracing dir the caller set with core.tracefs(dir), or NULL. */
const char *dp_tracefs_custom(void);

struct dp_kprobe;
/* Remove a kprobe from the kernel: 0, or -1 with errno (EBUSY in use). */
int dp_kprobe_destroy(struct dp_kprobe *kp);

struct dp_instance *dp_check_instance(lua_State *L, int idx); /* open only */
/* Undo what an Event set (triggers, filter, enable) when write is set, and
 * free what it kept; never raises. Returns 0 or -1 with a message in err. */
int dp_event_teardown(struct dp_event *ev, int write, char *err, size_t errlen);
/* Close a Pipe at idx (any mode); never raises. */
void dp_pipe_close_at(lua_State *L, int idx);

#endif
