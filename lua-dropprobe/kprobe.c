/*
 * kprobe.c - dropprobe.Kprobe: a kprobe or kretprobe event in the group
 * "dropprobe", built and checked before anything touches the kernel (the
 * Lua side checks the fetch-arg grammar; this file refuses control
 * characters and bad names again), created through libtracefs' dynamic-event
 * API and removed again on close or garbage collection - only this probe,
 * never anything else in kprobe_events.
 */

/***
 * @submodule dropprobe.core
 */
#include "core.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <tracefs.h>

#define DP_KPROBE_GROUP "dropprobe"

struct dp_kprobe {
	char name[DP_NAME_MAX + 1];
	char *at;
	char *args; /* space-separated fetch args, or NULL */
	int ret;
	int maxactive;
	int created;
	int closed;
	int held; /* an instance's event uses it: that instance removes it after its events */
	struct tracefs_dynevent *devent; /* NULL when created by hand (maxactive) */
};

static struct dp_kprobe *check_kprobe(lua_State *L, int idx)
{
	struct dp_kprobe *kp = luaL_checkudata(L, idx, DP_KPROBE_MT);
	if (kp->closed)
		luaL_error(L, "attempt to use a closed kprobe");
	return kp;
}

static int ident_ok(const char *s)
{
	if (!*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	return 1;
}

/* The line the kernel gets: "p:dropprobe/<name> <at> <args>" */
static void definition(struct dp_kprobe *kp, luaL_Buffer *b)
{
	char head[32];
	if (kp->ret && kp->maxactive > 0)
		snprintf(head, sizeof(head), "r%d:", kp->maxactive);
	else
		snprintf(head, sizeof(head), "%s:", kp->ret ? "r" : "p");
	luaL_addstring(b, head);
	luaL_addstring(b, DP_KPROBE_GROUP "/");
	luaL_addstring(b, kp->name);
	luaL_addchar(b, ' ');
	luaL_addstring(b, kp->at);
	if (kp->args && *kp->args) {
		luaL_addchar(b, ' ');
		luaL_addstring(b, kp->args);
	}
}

/***
 * A kprobe in the group `dropprobe` (not yet in the kernel: `create`);
 * `dropprobe.kprobe` checks the arguments first.
 * @function kprobe
 * @tparam string name
 * @tparam string at the function (or `function+offset`)
 * @tparam boolean ret a return probe
 * @tparam integer maxactive
 * @tparam {string,...} args `name=fetcharg:type`
 * @return a Kprobe
 */
static int kprobe_new(lua_State *L)
{
	size_t nl;
	const char *name = dp_check_command(L, 1, "kprobe name", &nl);
	const char *at = dp_check_command(L, 2, "kprobe place", NULL);
	int ret = lua_toboolean(L, 3);
	lua_Integer maxactive = luaL_optinteger(L, 4, 0);
	const char *args = lua_isnoneornil(L, 5) ? NULL : dp_check_command(L, 5, "kprobe args", NULL);
	struct dp_kprobe *kp;
	if (nl > DP_NAME_MAX || !ident_ok(name))
		return luaL_error(L, "bad kprobe name '%s': a letter or '_', then letters, digits "
				     "or '_' (at most %d)",
				  name, DP_NAME_MAX);
	if (!*at || strchr(at, ' '))
		return luaL_error(L, "bad kprobe place '%s'", at);
	if (maxactive < 0 || maxactive > 4096 || (maxactive && !ret))
		return luaL_error(L, "bad maxactive %I: 1 to 4096, return probes only", maxactive);
	kp = lua_newuserdatauv(L, sizeof(*kp), 0);
	memset(kp, 0, sizeof(*kp));
	kp->closed = 1;
	luaL_setmetatable(L, DP_KPROBE_MT);
	snprintf(kp->name, sizeof(kp->name), "%s", name);
	kp->at = strdup(at);
	kp->args = args ? strdup(args) : NULL;
	if (!kp->at || (args && !kp->args))
		return luaL_error(L, "out of memory");
	kp->ret = ret;
	kp->maxactive = (int)maxactive;
	kp->closed = 0;
	return 1;
}

/***
 * The exact line the kernel gets.
 * @function Kprobe:definition
 * @treturn string
 */
static int kprobe_definition(lua_State *L)
{
	struct dp_kprobe *kp = luaL_checkudata(L, 1, DP_KPROBE_MT);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	definition(kp, &b);
	luaL_pushresult(&b);
	return 1;
}

static int has_kprobe_events(void)
{
	char *path = tracefs_get_tracing_file("kprobe_events");
	struct stat st;
	int ok = path && stat(path, &st) == 0;
	tracefs_put_tracing_file(path);
	return ok;
}

/***
 * Write it into the kernel (through libtracefs' dynamic events).
 * @function Kprobe:create
 */
static int kprobe_create(lua_State *L)
{
	struct dp_kprobe *kp = check_kprobe(L, 1);
	int r;
	if (kp->created)
		return 0;
	if (!has_kprobe_events()) {
		lua_pushfstring(L, "cannot create kprobe %s/%s: this kernel has no kprobe events "
				   "(no kprobe_events in tracefs; it needs CONFIG_KPROBES=y and "
				   "CONFIG_KPROBE_EVENTS=y). Tracepoints such as skb:kfree_skb "
				   "still work.",
				DP_KPROBE_GROUP, kp->name);
		return lua_error(L);
	}
	errno = 0;
	if (kp->ret && kp->maxactive > 0) {
		/* libtracefs 1.6.4 formats a kretprobe with maxactive as
		 * "r5::group/event", which the kernel refuses: write the line
		 * that definition() builds instead */
		luaL_Buffer b;
		luaL_buffinit(L, &b);
		definition(kp, &b);
		luaL_pushresult(&b);
		r = tracefs_instance_file_append(NULL, "kprobe_events", lua_tostring(L, -1));
	} else {
		kp->devent = kp->ret ? tracefs_kretprobe_alloc(DP_KPROBE_GROUP, kp->name, kp->at,
							      kp->args, 0)
				     : tracefs_kprobe_alloc(DP_KPROBE_GROUP, kp->name, kp->at,
							    kp->args);
		if (!kp->devent)
			return luaL_error(L, "cannot build kprobe %s: %s", kp->name,
					  strerror(errno ? errno : ENOMEM));
		r = tracefs_dynevent_create(kp->devent);
	}
	if (r < 0) {
		int e = errno;
		char *k = tracefs_error_last(NULL);
		char what[256];
		snprintf(what, sizeof(what), "cannot create kprobe %s/%s at %s", DP_KPROBE_GROUP,
			 kp->name, kp->at);
		tracefs_dynevent_free(kp->devent);
		kp->devent = NULL;
		lua_pushstring(L, k ? k : strerror(e ? e : EINVAL));
		free(k);
		return dp_kernel_error(L, what, lua_tostring(L, -1), e,
				       e == EEXIST ? "a probe with that name exists already"
						   : "is the symbol in /proc/kallsyms, and the "
						     "fetch args valid for this architecture?");
	}
	kp->created = 1;
	return 0;
}

/* Remove the probe from the kernel. 0, or -1 with errno (EBUSY while an
 * enabled event uses it). */
static int kprobe_destroy(struct dp_kprobe *kp)
{
	int r;
	if (!kp->created)
		return 0;
	if (kp->devent) {
		r = tracefs_dynevent_destroy(kp->devent, false);
	} else {
		char line[DP_NAME_MAX + 32];
		snprintf(line, sizeof(line), "-:%s/%s", DP_KPROBE_GROUP, kp->name);
		r = tracefs_instance_file_append(NULL, "kprobe_events", line);
	}
	if (r < 0 && errno != ENOENT)
		return -1; /* kept as it is, to try again */
	tracefs_dynevent_free(kp->devent);
	kp->devent = NULL;
	kp->created = 0;
	return 0;
}

/***
 * Remove the probe of the group `dropprobe` with that name (for `dropprobe
 * cleanup`: a probe a dead process left); true also when it was not there.
 * @function kprobe_remove
 * @tparam string name
 * @treturn true|nil true, or nil and a message
 */
static int kprobe_remove(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	char line[DP_NAME_MAX + 32];
	if (!ident_ok(name) || strlen(name) > DP_NAME_MAX)
		return luaL_argerror(L, 1, "not a kprobe name");
	snprintf(line, sizeof(line), "-:%s/%s", DP_KPROBE_GROUP, name);
	if (tracefs_instance_file_append(NULL, "kprobe_events", line) < 0 && errno != ENOENT) {
		int e = errno; /* ENOENT: gone already, which is what was asked */
		luaL_pushfail(L);
		lua_pushfstring(L, "cannot remove kprobe %s/%s: %s%s", DP_KPROBE_GROUP, name,
				strerror(e), e == EBUSY ? " (an event still uses it)" : "");
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* Free the strings and mark closed (the kernel side is done or handed on). */
static void kprobe_release(struct dp_kprobe *kp)
{
	free(kp->at);
	free(kp->args);
	kp->at = kp->args = NULL;
	kp->closed = 1;
}

/***
 * Remove it from the kernel (only this probe); idempotent; also `__close`,
 * `__gc`. While an instance's event uses it, that instance removes it after
 * its events (so it may be closed before the instance), and `close` returns
 * true.
 * @function Kprobe:close
 */
static int kprobe_close(lua_State *L)
{
	struct dp_kprobe *kp = luaL_checkudata(L, 1, DP_KPROBE_MT);
	if (kp->closed)
		return 0;
	if (kprobe_destroy(kp) < 0) {
		if (errno == EBUSY && kp->held) {
			kprobe_release(kp); /* the instance removes it after its events */
			lua_pushboolean(L, 1);
			return 1;
		}
		return dp_kernel_error(L, "cannot remove kprobe", NULL, errno,
				       errno == EBUSY ? "an enabled event of another instance still "
							"uses it: close that instance first"
						      : NULL);
	}
	kprobe_release(kp);
	return 0;
}

/***
 * Internal: an instance's event uses the probe; the instance removes it
 * after its events.
 * @function Kprobe:_held
 */
static int kprobe_held(lua_State *L)
{
	struct dp_kprobe *kp = luaL_checkudata(L, 1, DP_KPROBE_MT);
	kp->held = 1;
	return 0;
}

/***
 * Internal: the probe out of the kernel (called by the instance whose events
 * used it, after them); the object stays usable (`create` again).
 * @function Kprobe:_destroy
 * @treturn true|nil true, or nil and a message
 */
static int kprobe_destroy_m(lua_State *L)
{
	struct dp_kprobe *kp = luaL_checkudata(L, 1, DP_KPROBE_MT);
	kp->held = 0; /* its instance is done with it */
	if (kprobe_destroy(kp) < 0) {
		int e = errno;
		luaL_pushfail(L);
		lua_pushfstring(L, "%s/%s: %s", DP_KPROBE_GROUP, kp->name, strerror(e));
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int kprobe_gc(lua_State *L)
{
	struct dp_kprobe *kp = luaL_checkudata(L, 1, DP_KPROBE_MT);
	/* EBUSY: an instance's enabled event still uses it; that instance holds
	 * this probe and removes it after its events (name and devent stay) */
	if (!kp->closed)
		(void)kprobe_destroy(kp);
	kprobe_release(kp);
	return 0;
}

static int kprobe_tostring(lua_State *L)
{
	struct dp_kprobe *kp = luaL_checkudata(L, 1, DP_KPROBE_MT);
	if (kp->closed) {
		lua_pushfstring(L, DP_KPROBE_MT " %s/%s (closed)", DP_KPROBE_GROUP, kp->name);
	} else {
		luaL_Buffer b;
		luaL_buffinit(L, &b);
		luaL_addstring(&b, DP_KPROBE_MT " \"");
		definition(kp, &b);
		luaL_addstring(&b, kp->created ? "\" (in the kernel)" : "\" (not created)");
		luaL_pushresult(&b);
	}
	return 1;
}

/***
 * The event the probe makes: its group and name, for `Instance:event`.
 * @function Kprobe:event_name
 * @treturn string "dropprobe"
 * @treturn string the name
 */
static int kprobe_event_name(lua_State *L)
{
	struct dp_kprobe *kp = luaL_checkudata(L, 1, DP_KPROBE_MT);
	lua_pushliteral(L, DP_KPROBE_GROUP);
	lua_pushstring(L, kp->name);
	return 2;
}

/***
 * Whether it is in the kernel.
 * @function Kprobe:is_created
 * @treturn boolean
 */
static int kprobe_is_created(lua_State *L)
{
	struct dp_kprobe *kp = luaL_checkudata(L, 1, DP_KPROBE_MT);
	lua_pushboolean(L, kp->created);
	return 1;
}

static const luaL_Reg kprobe_methods[] = {
	{"_held", kprobe_held},
	{"definition", kprobe_definition},
	{"create", kprobe_create},
	{"_destroy", kprobe_destroy_m},
	{"close", kprobe_close},
	{"event_name", kprobe_event_name},
	{"is_created", kprobe_is_created},
	{NULL, NULL},
};

static const luaL_Reg kprobe_meta[] = {
	{"__gc", kprobe_gc},
	{"__close", kprobe_close},
	{"__tostring", kprobe_tostring},
	{NULL, NULL},
};

void dp_kprobe_open(lua_State *L)
{
	luaL_newmetatable(L, DP_KPROBE_MT);
	luaL_setfuncs(L, kprobe_meta, 0);
	luaL_newlib(L, kprobe_methods);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, -3, "Kprobe");
	lua_setfield(L, -2, "KprobeMT");
	lua_pushcfunction(L, kprobe_new);
	lua_setfield(L, -2, "kprobe");
	lua_pushcfunction(L, kprobe_remove);
	lua_setfield(L, -2, "kprobe_remove");
}
