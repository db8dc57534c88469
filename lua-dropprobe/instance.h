/*
 * instance.h - dropprobe.Instance for the objects that live in one: its
 * events, the readers of its buffer, the kprobes its events use. Each
 * registers with the instance, which closes it through its own method
 * before the instance goes (lsqlite3's way): readers with close(), events
 * with _teardown(write), kprobes with _destroy() once the directory is gone.
 */
#ifndef DROPPROBE_INSTANCE_H
#define DROPPROBE_INSTANCE_H

#include "util.h"

struct dp_instance {
	struct tracefs_instance *ti;
	char name[DP_NAME_MAX + 1];
	int closed;
	long buffer_kb;
	int stack_triggers; /* stacktrace triggers set through its events */
	int tracer_set;     /* current_tracer was changed: back to nop on close */
	int ftrace_filter_set;
	int nevents;
};

enum dp_child {
	DP_CHILD_EVENT = 1,  /* ev:_teardown(write), by "system:name" */
	DP_CHILD_READER = 2, /* pipe:close(), weakly held */
	DP_CHILD_PROBE = 3   /* kp:_destroy(), after the instance's directory */
};

/* The Instance at idx, raising when it is closed. */
struct dp_instance *dp_check_instance(lua_State *L, int idx);
/* Make the object at obj a child of the instance at inst; key: an event's
 * "system:name" (NULL for the others). */
void dp_instance_adopt(lua_State *L, int inst, int obj, enum dp_child kind, const char *key);
/* Push the event child of that key, or nil; returns its Lua type. */
int dp_instance_event(lua_State *L, int inst, const char *key);
/* Whether the instance's directory is still there. */
int dp_instance_exists(struct dp_instance *in);
/* An event object was made in it (counted for its tostring). */
void dp_instance_event_made(struct dp_instance *in);
/* A stacktrace trigger was set (delta 1) or removed (-1) through one of
 * its events. */
void dp_instance_stack_trigger(struct dp_instance *in, int delta);
/* Whether an open instance has stacktrace triggers: its readers then wait
 * for the stack that follows an event. */
int dp_instance_stacked(const struct dp_instance *in);

#endif
