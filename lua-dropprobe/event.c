/*
 * event.c - dropprobe.Event: one trace event inside an Instance, with its
 * enable switch, filter and triggers. Every write is one command: strings
 * with control characters are refused before anything is written, and a
 * refused filter is put back as it was.
 */

/***
 * @submodule dropprobe.core
 */
#include "instance.h"
#include "core.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tracefs.h>

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

static struct dp_event *check_event(lua_State *L, int idx)
{
	struct dp_event *ev = luaL_checkudata(L, idx, DP_EVENT_MT);
	if (ev->closed || ev->inst->closed)
		luaL_error(L, "attempt to use a closed event (its instance was closed)");
	return ev;
}

static int event_write(struct dp_event *ev, const char *file, const char *val, int append)
{
	if (append)
		return tracefs_event_file_append(ev->inst->ti, ev->system, ev->name, file, val);
	return tracefs_event_file_write(ev->inst->ti, ev->system, ev->name, file, val);
}

/***
 * The Event of `system:name` in an instance (`Instance:event` splits the
 * name); the same event asked twice gives the same object.
 * @function event
 * @param inst an Instance
 * @tparam string system
 * @tparam string name
 * @return an Event
 */
static int event_new(lua_State *L)
{
	struct dp_instance *in = dp_check_instance(L, 1);
	size_t sl, nl;
	const char *sys = luaL_checklstring(L, 2, &sl);
	const char *name = luaL_checklstring(L, 3, &nl);
	struct dp_event *ev;

	if (!dp_name_ok(sys, sl, DP_NAME_MAX))
		return luaL_error(L, "bad event system '%s': names are made of A-Z a-z 0-9 _ . -",
				  sys);
	if (!dp_name_ok(name, nl, DP_NAME_MAX * 2))
		return luaL_error(L, "bad event name '%s': names are made of A-Z a-z 0-9 _ . -",
				  name);
	lua_pushfstring(L, "%s:%s", sys, name);
	if (dp_instance_event(L, 1, lua_tostring(L, -1)) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	if (!tracefs_event_file_exists(in->ti, sys, name, "enable"))
		return luaL_error(L, "unknown event %s:%s: this kernel has no such event "
				     "(see dp.events(\"%s\") or available_events)",
				  sys, name, sys);
	ev = lua_newuserdatauv(L, sizeof(*ev), 1);
	memset(ev, 0, sizeof(*ev));
	ev->inst = in;
	snprintf(ev->system, sizeof(ev->system), "%s", sys);
	snprintf(ev->name, sizeof(ev->name), "%s", name);
	luaL_setmetatable(L, DP_EVENT_MT);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 1); /* the event keeps its instance alive */
	/* the instance keeps its events, to tear them down */
	dp_instance_adopt(L, 1, -1, DP_CHILD_EVENT, lua_tostring(L, -2));
	dp_instance_event_made(in);
	return 1;
}

/* Undo what the Event set (triggers, filter, enable) when write is set, and
 * free what it kept; never raises. Returns 0 or -1 with a message in err. */
static int event_teardown(struct dp_event *ev, int write, char *err, size_t errlen)
{
	int failed = 0; /* every step is tried; the first failure is reported */
	char buf[1100];
	for (int i = ev->ntriggers - 1; i >= 0; i--) {
		snprintf(buf, sizeof(buf), "!%s", ev->triggers[i]);
		if (write && event_write(ev, "trigger", buf, 1) < 0 && !failed) {
			snprintf(err, errlen, "cannot remove trigger '%s' of %s:%s: %s",
				 ev->triggers[i], ev->system, ev->name, strerror(errno));
			failed = 1;
		}
		if (strncmp(ev->triggers[i], "stacktrace", 10) == 0)
			dp_instance_stack_trigger(ev->inst, -1);
		free(ev->triggers[i]);
	}
	free(ev->triggers);
	ev->triggers = NULL;
	ev->ntriggers = 0;
	if (ev->filter) {
		if (write && event_write(ev, "filter", "0", 0) < 0 && !failed) {
			snprintf(err, errlen, "cannot clear the filter of %s:%s: %s", ev->system,
				 ev->name, strerror(errno));
			failed = 1;
		}
		free(ev->filter);
		ev->filter = NULL;
	}
	if (ev->enabled) {
		if (write && tracefs_event_disable(ev->inst->ti, ev->system, ev->name) < 0 &&
		    !failed) {
			snprintf(err, errlen, "cannot disable %s:%s: %s", ev->system, ev->name,
				 strerror(errno));
			failed = 1;
		}
		ev->enabled = 0;
	}
	return failed ? -1 : 0;
}

/* Raise with what was asked, the kernel's words (error_log) and a hint. */
static int refuse(lua_State *L, struct dp_event *ev, const char *what, const char *expr,
		  int err, const char *hint)
{
	char *kmsg = dp_error_last(ev->inst->ti);
	char asked[1400];
	snprintf(asked, sizeof(asked), "%s '%s' on %s:%s", what, expr, ev->system, ev->name);
	lua_pushstring(L, kmsg ? kmsg : strerror(err));
	free(kmsg);
	return dp_kernel_error(L, asked, lua_tostring(L, -1), err, hint);
}

/***
 * Internal: the raw filter write (`dropprobe` turns reason names into this
 * kernel's numbers first); on refusal the previous filter is written back.
 * nil clears it.
 * @function Event:_filter
 * @tparam string|nil expr
 * @return the event
 */
static int event_filter(lua_State *L)
{
	struct dp_event *ev = check_event(L, 1);
	const char *expr;
	char *copy;
	size_t n;
	if (lua_isnoneornil(L, 2)) {
		if (event_write(ev, "filter", "0", 0) < 0)
			return dp_kernel_error(L, "cannot clear filter", NULL, errno, NULL);
		free(ev->filter);
		ev->filter = NULL;
		return 0;
	}
	expr = dp_check_command(L, 2, "filter", &n);
	if (n == 0 || n > 1024)
		return luaL_argerror(L, 2, "a filter is 1 to 1024 bytes (use nil to clear)");
	tracefs_error_clear(ev->inst->ti);
	if (event_write(ev, "filter", expr, 0) < 0) {
		int e = errno;
		/* the kernel dropped the old filter with the failed write: put it back */
		int restored = event_write(ev, "filter", ev->filter ? ev->filter : "0", 0) >= 0;
		return refuse(L, ev, "filter", expr, e,
			      !restored ? "the previous filter could not be restored"
			      : ev->filter ? "nothing was changed: the previous filter is still in force"
					   : "nothing was changed: the event has no filter, as before");
	}
	copy = strdup(expr);
	if (!copy)
		return luaL_error(L, "out of memory");
	free(ev->filter);
	ev->filter = copy;
	return 0;
}

/***
 * Internal: add one trigger (as the kernel reads it); it is removed again
 * when the event closes.
 * @function Event:_trigger
 * @tparam string spec
 * @return the event
 */
static int event_trigger(lua_State *L)
{
	struct dp_event *ev = check_event(L, 1);
	size_t n;
	const char *spec = dp_check_command(L, 2, "trigger", &n);
	char **t;
	if (n == 0 || n > 1024)
		return luaL_argerror(L, 2, "a trigger is 1 to 1024 bytes");
	if (spec[0] == '!')
		return luaL_argerror(L, 2, "use ev:untrigger(spec) to remove a trigger");
	t = realloc(ev->triggers, sizeof(char *) * (size_t)(ev->ntriggers + 1));
	if (!t)
		return luaL_error(L, "out of memory");
	ev->triggers = t;
	tracefs_error_clear(ev->inst->ti);
	if (event_write(ev, "trigger", spec, 1) < 0) {
		int e = errno;
		return refuse(L, ev, "trigger", spec, e,
			      e == EEXIST ? "this trigger is already set on the event"
					  : "see the trigger syntax in tracefs README; "
					    "commands: stacktrace[:N], traceon, traceoff, "
					    "enable_event:sys:event, disable_event:sys:event");
	}
	t[ev->ntriggers] = strdup(spec);
	if (!t[ev->ntriggers]) {
		char buf[1100];
		snprintf(buf, sizeof(buf), "!%s", spec);
		event_write(ev, "trigger", buf, 1);
		return luaL_error(L, "out of memory");
	}
	ev->ntriggers++;
	if (strncmp(spec, "stacktrace", 10) == 0)
		dp_instance_stack_trigger(ev->inst, 1);
	return 0;
}

/***
 * Remove a trigger that was set through this object.
 * @function Event:untrigger
 * @tparam string spec as it was given
 */
static int event_untrigger(lua_State *L)
{
	struct dp_event *ev = check_event(L, 1);
	const char *spec = dp_check_command(L, 2, "trigger", NULL);
	char buf[1100];
	int i;
	for (i = 0; i < ev->ntriggers; i++)
		if (strcmp(ev->triggers[i], spec) == 0)
			break;
	if (i == ev->ntriggers)
		return luaL_error(L, "no trigger '%s' was set through this event", spec);
	snprintf(buf, sizeof(buf), "!%s", spec);
	if (event_write(ev, "trigger", buf, 1) < 0)
		return refuse(L, ev, "removing trigger", spec, errno, NULL);
	if (strncmp(spec, "stacktrace", 10) == 0)
		dp_instance_stack_trigger(ev->inst, -1);
	free(ev->triggers[i]);
	memmove(ev->triggers + i, ev->triggers + i + 1,
		sizeof(char *) * (size_t)(ev->ntriggers - i - 1));
	ev->ntriggers--;
	return 0;
}

/***
 * Enable the event in its instance.
 * @function Event:enable
 * @return the event
 */
static int event_enable(lua_State *L)
{
	struct dp_event *ev = check_event(L, 1);
	if (tracefs_event_enable(ev->inst->ti, ev->system, ev->name) < 0)
		return dp_kernel_error(L, "cannot enable event", NULL, errno, NULL);
	ev->enabled = 1;
	lua_settop(L, 1);
	return 1;
}

/***
 * Disable it (a stacktrace trigger still fires: remove it or turn tracing
 * off).
 * @function Event:disable
 * @return the event
 */
static int event_disable(lua_State *L)
{
	struct dp_event *ev = check_event(L, 1);
	if (tracefs_event_disable(ev->inst->ti, ev->system, ev->name) < 0)
		return dp_kernel_error(L, "cannot disable event", NULL, errno, NULL);
	ev->enabled = 0;
	lua_settop(L, 1);
	return 1;
}

/***
 * `{ system, name, enabled, closed, filter, triggers = {...} }`.
 * @function Event:info
 * @treturn table
 */
static int event_info(lua_State *L)
{
	struct dp_event *ev = luaL_checkudata(L, 1, DP_EVENT_MT);
	lua_createtable(L, 0, 6);
	lua_pushstring(L, ev->system);
	lua_setfield(L, -2, "system");
	lua_pushstring(L, ev->name);
	lua_setfield(L, -2, "name");
	lua_pushboolean(L, ev->enabled);
	lua_setfield(L, -2, "enabled");
	lua_pushboolean(L, ev->closed || ev->inst->closed);
	lua_setfield(L, -2, "closed");
	if (ev->filter) {
		lua_pushstring(L, ev->filter);
		lua_setfield(L, -2, "filter");
	}
	lua_createtable(L, ev->ntriggers, 0);
	for (int i = 0; i < ev->ntriggers; i++) {
		lua_pushstring(L, ev->triggers[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "triggers");
	return 1;
}

/***
 * The text of one of the event's files (`format`, `filter`, `trigger`, ...).
 * @function Event:read_file
 * @tparam string name
 * @treturn string
 */
static int event_read_file(lua_State *L)
{
	struct dp_event *ev = check_event(L, 1);
	const char *f = luaL_checkstring(L, 2);
	char *s;
	if (!dp_name_ok(f, strlen(f), 32))
		return luaL_argerror(L, 2, "bad file name");
	s = tracefs_event_file_read(ev->inst->ti, ev->system, ev->name, f, NULL);
	if (!s)
		return dp_kernel_error(L, "cannot read event file", NULL, errno, NULL);
	lua_pushstring(L, s);
	free(s);
	return 1;
}

static int event_tostring(lua_State *L)
{
	struct dp_event *ev = luaL_checkudata(L, 1, DP_EVENT_MT);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	lua_pushfstring(L, DP_EVENT_MT " %s:%s [", ev->system, ev->name);
	luaL_addvalue(&b);
	if (ev->closed || ev->inst->closed) {
		luaL_addstring(&b, "closed");
	} else {
		luaL_addstring(&b, ev->enabled ? "enabled" : "disabled");
		if (ev->filter) {
			lua_pushfstring(L, ", filter \"%s\"", ev->filter);
			luaL_addvalue(&b);
		}
		for (int i = 0; i < ev->ntriggers; i++) {
			lua_pushfstring(L, ", trigger \"%s\"", ev->triggers[i]);
			luaL_addvalue(&b);
		}
	}
	luaL_addchar(&b, ']');
	luaL_pushresult(&b);
	return 1;
}

/* Nothing to do on GC: the instance owns the kernel state and tears it
 * down; the strings go with the instance's close or here if it is gone. */
static int event_gc(lua_State *L)
{
	struct dp_event *ev = luaL_checkudata(L, 1, DP_EVENT_MT);
	if (ev->closed || ev->inst == NULL) {
		free(ev->filter);
		ev->filter = NULL;
		for (int i = 0; i < ev->ntriggers; i++)
			free(ev->triggers[i]);
		free(ev->triggers);
		ev->triggers = NULL;
		ev->ntriggers = 0;
	}
	return 0;
}

/***
 * Internal: called by the instance as it closes; undoes what this object set
 * (with `write`: the directory is still there) and closes it. Never raises.
 * @function Event:_teardown
 * @tparam boolean write
 * @treturn true|nil true, or nil and a message
 */
static int event_teardown_m(lua_State *L)
{
	struct dp_event *ev = luaL_checkudata(L, 1, DP_EVENT_MT);
	char err[512];
	int r = 0;
	if (!ev->closed)
		r = event_teardown(ev, lua_toboolean(L, 2), err, sizeof(err));
	ev->closed = 1;
	if (r < 0) {
		luaL_pushfail(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg event_methods[] = {
	{"_teardown", event_teardown_m},
	{"_filter", event_filter},
	{"_trigger", event_trigger},
	{"untrigger", event_untrigger},
	{"enable", event_enable},
	{"disable", event_disable},
	{"info", event_info},
	{"read_file", event_read_file},
	{NULL, NULL},
};

static const luaL_Reg event_meta[] = {
	{"__gc", event_gc},
	{"__tostring", event_tostring},
	{NULL, NULL},
};

void dp_event_open(lua_State *L)
{
	luaL_newmetatable(L, DP_EVENT_MT);
	luaL_setfuncs(L, event_meta, 0);
	luaL_newlib(L, event_methods);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, -3, "Event");
	lua_pop(L, 1);
	lua_pushcfunction(L, event_new);
	lua_setfield(L, -2, "event");
}
