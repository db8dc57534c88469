/*
 * instance.c - dropprobe.Instance: a private tracefs instance (its own ring
 * buffer, events, filters, triggers) that this process created and removes.
 */

/***
 * @submodule dropprobe.core
 */
#include "instance.h"

#include "core.h"
#include "tracing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tracefs.h>

static int instance_counter;

struct dp_instance *dp_check_instance(lua_State *L, int idx)
{
	struct dp_instance *in = luaL_checkudata(L, idx, DP_INSTANCE_MT);
	if (in->closed)
		luaL_error(L, "attempt to use a closed instance");
	return in;
}

/* uservalue slots of an Instance: one per kind of child (enum dp_child) */
#define UV_N 3

/* Whether the instance's directory is still there (tracefs_instance_exists
 * does not follow a tracing dir set with tracefs_set_tracing_dir). */
int dp_instance_exists(struct dp_instance *in)
{
	struct tracefs_instance *ti = in->ti;
	char *d = ti ? tracefs_instance_get_dir(ti) : NULL;
	struct stat st;
	int ok = d && stat(d, &st) == 0 && S_ISDIR(st.st_mode);
	tracefs_put_tracing_file(d);
	return ok;
}

/* Whether the tracefs the instance was made in is still mounted. Its
 * tracing dir is taken from the instance's own path: libtracefs'
 * tracefs_tracing_dir() mounts tracefs again when it finds it gone,
 * which would undo the unmount this asks about. */
static int instance_mounted(struct dp_instance *in)
{
	char *d = in->ti ? tracefs_instance_get_dir(in->ti) : NULL;
	char *cut = d ? strstr(d, "/instances/") : NULL;
	int ok;
	if (cut)
		*cut = 0;
	ok = dp_tracefs_mounted(d);
	tracefs_put_tracing_file(d);
	return ok;
}

static int instance_name_taken(const char *name)
{
	char path[4200];
	struct stat st;
	snprintf(path, sizeof(path), "%s/instances/%s", tracefs_tracing_dir(), name);
	return stat(path, &st) == 0;
}

/* Best effort: an option file may be missing on old kernels or fake trees. */
static void set_option(struct tracefs_instance *ti, const char *file, const char *val)
{
	if (tracefs_file_exists(ti, file))
		(void)tracefs_instance_file_write(ti, file, val);
}

/***
 * A private tracefs instance (libtracefs): its own ring buffer and event
 * switches, removed with everything in it on close.
 * @function instance
 * @tparam table opts `name`, `buffer_kb`, `clock`
 * @return an Instance
 */
static int instance_new(lua_State *L)
{
	static const char *const opts[] = {"name", "buffer_kb", "clock", NULL};
	char defname[DP_NAME_MAX + 1];
	const char *name, *clock;
	lua_Integer kb;
	struct dp_instance *in;
	struct tracefs_instance *ti;
	size_t nlen;

	dp_check_fields(L, 1, opts);
	name = dp_opt_string(L, 1, "name", NULL);
	kb = dp_opt_integer(L, 1, "buffer_kb", 0);
	clock = dp_opt_string(L, 1, "clock", "mono");
	if (!name) {
		snprintf(defname, sizeof(defname), "dropprobe-%ld-%d", (long)getpid(),
			 ++instance_counter);
		name = defname;
	}
	nlen = strlen(name);
	if (!dp_name_ok(name, nlen, DP_NAME_MAX))
		return luaL_error(L, "bad instance name '%s': use 1 to %d of A-Z a-z 0-9 _ . - "
				     "(not '.' or '..')",
				  name, DP_NAME_MAX);
	if (kb < 0 || kb > 4 * 1024 * 1024)
		return luaL_error(L, "bad buffer_kb %I: give a size per CPU in kB (1 to 4194304)",
				  kb);
	if (!dp_name_ok(clock, strlen(clock), 32))
		return luaL_error(L, "bad clock '%s'", clock);
	if (!dp_custom_dir && !dp_is_root())
		return luaL_error(L, "creating tracefs instance '%s' needs root: tracefs control "
				     "files are writable only with CAP_SYS_ADMIN (run with sudo)",
				  name);
	{
		char dir[4096];
		if (dp_ensure_tracefs(L, dir, sizeof(dir)) < 0)
			return lua_error(L);
	}
	if (instance_name_taken(name))
		return luaL_error(L, "tracefs instance '%s' already exists and this process did "
				     "not create it; dropprobe never adopts or removes an instance "
				     "it did not make (choose another name; `dropprobe cleanup` "
				     "removes ones left by dead dropprobe processes)",
				  name);

	in = lua_newuserdatauv(L, sizeof(*in), UV_N);
	memset(in, 0, sizeof(*in));
	in->closed = 1; /* until created */
	luaL_setmetatable(L, DP_INSTANCE_MT);
	lua_newtable(L);
	lua_setiuservalue(L, -2, DP_CHILD_EVENT);
	lua_newtable(L); /* readers: weak keys so an unclosed pipe can be collected */
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	lua_setiuservalue(L, -2, DP_CHILD_READER);
	lua_newtable(L);
	lua_setiuservalue(L, -2, DP_CHILD_PROBE);

	errno = 0;
	ti = tracefs_instance_create(name);
	if (!ti)
		return dp_kernel_error(L, "cannot create tracefs instance", NULL, errno,
				       "is tracefs mounted and writable?");
	if (!tracefs_instance_is_new(ti)) {
		/* someone made it between our check and mkdir: not ours */
		tracefs_instance_free(ti);
		return luaL_error(L, "tracefs instance '%s' appeared while being created by "
				     "another process; it is left alone",
				  name);
	}
	in->ti = ti;
	in->closed = 0;
	snprintf(in->name, sizeof(in->name), "%s", name);
	if (kb > 0) {
		if (tracefs_instance_set_buffer_size(ti, (size_t)kb, -1) < 0) {
			int e = errno;
			tracefs_instance_destroy(ti);
			tracefs_instance_free(ti);
			in->ti = NULL;
			in->closed = 1;
			return dp_kernel_error(L, "cannot set the instance's buffer_size_kb", NULL,
					       e, "try a smaller buffer_kb");
		}
	}
	{
		ssize_t got = tracefs_instance_get_buffer_size(ti, 0);
		in->buffer_kb = got > 0 ? (long)got : kb;
	}
	/* text records: frame offsets, as raw mode has them; a clock that
	 * compares with CLOCK_MONOTONIC. Private instance only. Real pointers
	 * in text (hash-ptr off) are the Lua side's call, after it has probed
	 * that this kernel prints everything with them (inst:_option). */
	set_option(ti, "options/sym-offset", "1");
	if (tracefs_file_exists(ti, "trace_clock") &&
	    tracefs_instance_file_write(ti, "trace_clock", clock) < 0 && dp_custom_dir == 0) {
		int e = errno;
		tracefs_instance_destroy(ti);
		tracefs_instance_free(ti);
		in->ti = NULL;
		in->closed = 1;
		return dp_kernel_error(L, "cannot set trace_clock", NULL, e,
				       "see trace_clock for the clocks this kernel has");
	}
	return 1;
}

void dp_instance_adopt(lua_State *L, int inst, int obj, enum dp_child kind, const char *key)
{
	obj = lua_absindex(L, obj);
	lua_getiuservalue(L, inst, (int)kind);
	if (key)
		lua_pushstring(L, key);
	else
		lua_pushvalue(L, obj);
	if (key)
		lua_pushvalue(L, obj);
	else
		lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
}

int dp_instance_event(lua_State *L, int inst, const char *key)
{
	int t;
	lua_getiuservalue(L, inst, DP_CHILD_EVENT);
	lua_pushstring(L, key);
	t = lua_rawget(L, -2);
	lua_remove(L, -2);
	return t;
}

/*
 * Call obj:method(arg) for each child of a kind (the object is the key,
 * or the value when keyed by name); the first failure (a raise, or nil
 * and a message) into err. Returns whether one failed.
 */
static int close_children(lua_State *L, int idx, enum dp_child kind, const char *method,
			  int arg, char *err, size_t errlen)
{
	int failed = 0;
	if (lua_getiuservalue(L, idx, (int)kind) != LUA_TTABLE) {
		lua_pop(L, 1);
		return 0;
	}
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		int obj = kind == DP_CHILD_EVENT ? -1 : -2;
		int n = 1;
		if (luaL_getmetafield(L, obj, "__index") != LUA_TNIL) {
			lua_getfield(L, -1, method);
			lua_remove(L, -2);
			lua_pushvalue(L, obj - 1);
			if (arg >= 0) {
				lua_pushboolean(L, arg);
				n = 2;
			}
			if (lua_pcall(L, n, 2, 0) != LUA_OK) {
				lua_pushnil(L);
				lua_insert(L, -2); /* nil, message */
			}
			if (!lua_toboolean(L, -2) && !failed) {
				snprintf(err, errlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1)
										 : "failed");
				failed = 1;
			}
			lua_pop(L, 2);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return failed;
}

/* Instances the garbage collector closed but whose directory the kernel
 * would not remove yet (EBUSY: seen when the collector finalizes them
 * while another instance's reader is still open): removed when another
 * instance closes, and at the latest when the module goes with its Lua
 * state, so that nothing is left in tracefs. */
#define PENDING_MAX 32
static struct tracefs_instance *pending[PENDING_MAX];
static int npending;

static void retry_pending(void)
{
	for (int i = 0; i < npending;) {
		if (tracefs_instance_destroy(pending[i]) == 0 || errno == ENOENT) {
			tracefs_instance_free(pending[i]);
			pending[i] = pending[--npending];
		} else {
			i++;
		}
	}
}

/* Remove the instance directory. The kernel refuses (EBUSY) while a file
 * of the instance is still referenced, and the last reference of a file
 * just closed may be dropped a moment later: a few short retries before
 * giving up. */
static int instance_rmdir(struct dp_instance *in)
{
	for (int i = 0;; i++) {
		if (tracefs_instance_destroy(in->ti) == 0)
			return 0;
		if (errno != EBUSY || i == 5)
			return -1;
		{
			struct timespec ts = {0, 2 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
}

/*
 * tracefs was unmounted under this process (umount, or umount -l while a
 * reader was open): the instance is still in the kernel, out of reach of
 * the path it was made under. Mount tracefs at a directory of our own,
 * remove the instance there (the kernel drops its triggers, filters and
 * enables with it) and the probes its events used, then unmount again:
 * nothing is left and the user's unmount stands. Frees in->ti.
 */
static const char *instance_remove_unmounted(lua_State *L, int idx, struct dp_instance *in,
					     char *err, size_t errlen)
{
	char mnt[64], path[4200], perr[400];
	int r = -1;
	if (dp_tracefs_mount_private(mnt, sizeof(mnt)) < 0) {
		snprintf(err, errlen,
			 "tracefs was unmounted under this process and mounting it again to "
			 "remove instance '%s' failed: %s (mount -t tracefs nodev "
			 "/sys/kernel/tracing, then `dropprobe cleanup` removes it)",
			 in->name, strerror(errno));
		return err;
	}
	snprintf(path, sizeof(path), "%s/instances/%s", mnt, in->name);
	for (int i = 0; i < 6; i++) {
		struct timespec ts = {0, 2 * 1000 * 1000};
		r = rmdir(path);
		if (r == 0 || errno != EBUSY)
			break;
		nanosleep(&ts, NULL);
	}
	if (r < 0 && errno != ENOENT) {
		snprintf(err, errlen,
			 "tracefs was unmounted under this process and instance '%s' could not be "
			 "removed: %s (mount -t tracefs nodev /sys/kernel/tracing, then `dropprobe "
			 "cleanup` removes it)",
			 in->name, strerror(errno));
		dp_tracefs_umount_private(mnt);
		return err;
	}
	tracefs_instance_free(in->ti);
	in->ti = NULL;
	/* the probes: libtracefs writes kprobe_events under its tracing dir */
	tracefs_set_tracing_dir(mnt);
	r = close_children(L, idx, DP_CHILD_PROBE, "_destroy", -1, perr, sizeof(perr));
	tracefs_set_tracing_dir(NULL);
	dp_tracefs_umount_private(mnt);
	if (r) {
		snprintf(err, errlen, "cannot remove a kprobe of instance '%s': %s", in->name, perr);
		return err;
	}
	return NULL;
}

/*
 * Tear down in order: readers, then events (triggers, filters, enable),
 * then the instance directory, then the probes its events used. Never
 * raises; returns an error message or NULL.
 */
static const char *instance_close_impl(lua_State *L, int idx, struct dp_instance *in,
				       char *err, size_t errlen)
{
	int failed = 0, gone;
	idx = lua_absindex(L, idx);
	err[0] = 0;
	if (!in->ti)
		return NULL; /* closed and removed */
	if (in->closed)
		goto destroy; /* an earlier removal failed: try again */
	/* readers first: an open trace_pipe fd makes rmdir fail with EBUSY */
	close_children(L, idx, DP_CHILD_READER, "close", -1, err, errlen);
	/* someone else removed it (trace-cmd extract -B does): nothing to undo */
	gone = !dp_instance_exists(in);
	failed = close_children(L, idx, DP_CHILD_EVENT, "_teardown", !gone, err, errlen);
	if (!gone && in->tracer_set && tracefs_instance_file_write(in->ti, "current_tracer", "nop") < 0 &&
	    !failed) {
		snprintf(err, errlen, "cannot set the tracer of '%s' back to nop: %s", in->name,
			 strerror(errno));
		failed = 1;
	}
	if (!gone && in->ftrace_filter_set)
		(void)tracefs_instance_file_clear(in->ti, "set_ftrace_filter");
	/* removed while it was being undone (a cleanup racing this close):
	 * what failed went with the directory, so nothing is left to undo */
	if (failed && !dp_instance_exists(in)) {
		failed = 0;
		err[0] = 0;
	}
	in->tracer_set = in->ftrace_filter_set = 0;
	in->closed = 1;
destroy:
	/* also on a retry: a removal under an unmounted tracefs that failed
	 * before is tried again the same way, never through the old path */
	if (!instance_mounted(in) && !dp_instance_exists(in))
		return instance_remove_unmounted(L, idx, in, err, errlen);
	if (instance_rmdir(in) < 0 && errno != ENOENT) {
		int e = errno;
		snprintf(err, errlen,
			 "cannot remove tracefs instance '%s': %s%s", in->name, strerror(e),
			 e == EBUSY ? " (one of its files is still open, e.g. a trace_pipe "
				      "reader; close it and call close() again)"
				    : "");
		return err; /* the handle stays: close() or GC tries again */
	}
	tracefs_instance_free(in->ti);
	in->ti = NULL;
	/* the probes its events used can go now that no event is enabled */
	{
		char perr[400];
		if (close_children(L, idx, DP_CHILD_PROBE, "_destroy", -1, perr, sizeof(perr)) &&
		    !failed) {
			snprintf(err, errlen, "cannot remove a kprobe of instance '%s': %s", in->name,
				 perr);
			failed = 1;
		}
	}
	return failed ? err : NULL;
}

/***
 * Close: readers first, then each event's triggers, filter and enable, the
 * tracer, then the instance directory, then the kprobes its events used.
 * An instance someone else removed, before or during the close, has
 * nothing left to undo and closes without error. Idempotent; also
 * `__close` and `__gc`.
 * @function Instance:close
 */
static int instance_close(lua_State *L)
{
	struct dp_instance *in = luaL_checkudata(L, 1, DP_INSTANCE_MT);
	char err[512];
	if (instance_close_impl(L, 1, in, err, sizeof(err)))
		return luaL_error(L, "%s", err);
	retry_pending();
	return 0;
}

static int instance_gc(lua_State *L)
{
	struct dp_instance *in = luaL_checkudata(L, 1, DP_INSTANCE_MT);
	char err[512];
	if (instance_close_impl(L, 1, in, err, sizeof(err))) {
		if (in->ti && npending < PENDING_MAX) {
			pending[npending++] = in->ti; /* its directory: tried again later */
			in->ti = NULL;
		} else {
			lua_warning(L, err, 0);
		}
	}
	retry_pending();
	return 0;
}

/* The module goes with its Lua state: the last try for what is pending. */
static int instance_unload(lua_State *L)
{
	(void)L;
	retry_pending();
	for (int i = 0; i < npending; i++) {
		fprintf(stderr, "dropprobe: cannot remove tracefs instance '%s' (%s); "
				"`dropprobe cleanup` removes it\n",
			tracefs_instance_get_name(pending[i]), strerror(errno));
		tracefs_instance_free(pending[i]);
	}
	npending = 0;
	return 0;
}

static int instance_tostring(lua_State *L)
{
	struct dp_instance *in = luaL_checkudata(L, 1, DP_INSTANCE_MT);
	if (in->closed)
		lua_pushfstring(L, DP_INSTANCE_MT " \"%s\" (closed)", in->name);
	else
		lua_pushfstring(L, DP_INSTANCE_MT " \"%s\" (%d kB, %d event%s)", in->name,
				(int)in->buffer_kb, in->nevents, in->nevents == 1 ? "" : "s");
	return 1;
}

/***
 * The instance's name.
 * @function Instance:name
 * @treturn string
 */
static int instance_name(lua_State *L)
{
	struct dp_instance *in = luaL_checkudata(L, 1, DP_INSTANCE_MT);
	lua_pushstring(L, in->name);
	return 1;
}

/***
 * Whether it was closed.
 * @function Instance:is_closed
 * @treturn boolean
 */
static int instance_is_closed(lua_State *L)
{
	struct dp_instance *in = luaL_checkudata(L, 1, DP_INSTANCE_MT);
	lua_pushboolean(L, in->closed);
	return 1;
}

/***
 * Whether the instance's directory went away under this process, and how:
 * nil while it is there (or the instance was closed), "removed" when
 * someone removed it (`rmdir`; the kernel's counts and settings in it went
 * with it), "unmounted" when tracefs was unmounted (the instance is still
 * in the kernel: close removes it through a mount of its own).
 * @function Instance:gone
 * @treturn string|nil
 */
static int instance_gone(lua_State *L)
{
	struct dp_instance *in = luaL_checkudata(L, 1, DP_INSTANCE_MT);
	if (in->closed || !in->ti || dp_instance_exists(in))
		return 0;
	lua_pushstring(L, instance_mounted(in) ? "removed" : "unmounted");
	return 1;
}

/***
 * Its directory in tracefs.
 * @function Instance:dir
 * @treturn string
 */
static int instance_dir(lua_State *L)
{
	struct dp_instance *in = dp_check_instance(L, 1);
	char *d = tracefs_instance_get_dir(in->ti);
	if (!d)
		return luaL_error(L, "cannot get the directory of instance '%s'", in->name);
	lua_pushstring(L, d);
	tracefs_put_tracing_file(d);
	return 1;
}

/***
 * Read one of its files (`trace_clock`, `per_cpu/cpu0/stats`, ...).
 * @function Instance:read_file
 * @tparam string name
 * @treturn string|nil contents, or nil and a message
 */
static int instance_read_file(lua_State *L)
{
	struct dp_instance *in = dp_check_instance(L, 1);
	const char *f = dp_check_command(L, 2, "file name", NULL);
	char *s;
	if (strstr(f, ".."))
		return luaL_argerror(L, 2, "'..' is not allowed");
	s = tracefs_instance_file_read(in->ti, f, NULL);
	if (!s) {
		luaL_pushfail(L);
		lua_pushfstring(L, "cannot read %s of instance '%s': %s", f, in->name,
				strerror(errno));
		return 2;
	}
	lua_pushstring(L, s);
	free(s);
	return 1;
}

/***
 * Get or set its `tracing_on` (events and triggers of this instance only).
 * @function Instance:tracing
 * @tparam[opt] boolean on
 * @treturn boolean when called without argument
 */
static int instance_tracing(lua_State *L)
{
	struct dp_instance *in = dp_check_instance(L, 1);
	int r;
	if (lua_isnoneornil(L, 2)) {
		lua_pushboolean(L, tracefs_trace_is_on(in->ti) == 1);
		return 1;
	}
	r = lua_toboolean(L, 2) ? tracefs_trace_on(in->ti) : tracefs_trace_off(in->ti);
	if (r < 0)
		return dp_kernel_error(L, "cannot set tracing_on", NULL, errno, NULL);
	return 0;
}

/***
 * Internal: the instance's own tracer (never the top level's), with an
 * optional function filter written first, so that a kernel that refuses the
 * filter is refused before the tracer changes; `nop` again on close.
 * @function Instance:_tracer
 * @tparam string name
 * @tparam[opt] {string,...} functions
 */
static int instance_tracer(lua_State *L)
{
	struct dp_instance *in = dp_check_instance(L, 1);
	size_t n;
	const char *tracer = dp_check_command(L, 2, "tracer", &n);
	const char *filter = lua_isnoneornil(L, 3) ? NULL
						   : dp_check_command(L, 3, "function filter", NULL);
	if (!dp_name_ok(tracer, n, 32))
		return luaL_error(L, "bad tracer name '%s'", tracer);
	if (!tracefs_tracer_available(tracefs_tracing_dir(), tracer))
		return luaL_error(L, "tracer '%s' is not available on this kernel (see "
				     "available_tracers; the function tracer needs "
				     "CONFIG_FUNCTION_TRACER=y)",
				  tracer);
	if (filter) {
		if (tracefs_instance_file_write(in->ti, "set_ftrace_filter", filter) < 0) {
			int e = errno;
			char what[300];
			snprintf(what, sizeof(what), "function filter '%s' on instance '%s'", filter,
				 in->name);
			return dp_kernel_error(
			    L, what, NULL, e,
			    e == EPERM ? "the kernel does not allow the function filter here: "
					 "kernel lockdown or a restricted ftrace "
					 "(available_filter_functions is not readable either); "
					 "nothing was changed"
				       : e == EINVAL ? "no such function in "
						       "available_filter_functions; nothing was "
						       "changed"
						     : "nothing was changed");
		}
		in->ftrace_filter_set = 1;
	}
	if (tracefs_instance_file_write(in->ti, "current_tracer", tracer) < 0) {
		int e = errno;
		if (filter) {
			(void)tracefs_instance_file_clear(in->ti, "set_ftrace_filter");
			in->ftrace_filter_set = 0;
		}
		return dp_kernel_error(L, "cannot set the instance's tracer", NULL, e,
				       "the function filter was cleared again");
	}
	in->tracer_set = strcmp(tracer, "nop") != 0;
	return 0;
}

/***
 * Internal: set a trace option of this private instance (`options/<name>`;
 * never the top level's).
 * @function Instance:_option
 * @tparam string name
 * @tparam boolean value
 * @treturn boolean whether the option exists and took the value
 */
static int instance_option(lua_State *L)
{
	struct dp_instance *in = dp_check_instance(L, 1);
	size_t n;
	const char *name = dp_check_command(L, 2, "option", &n);
	const char *val = dp_check_command(L, 3, "option value", NULL);
	char file[80];
	if (n == 0 || n > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_") != n)
		return luaL_argerror(L, 2, "an option name (see the instance's options/)");
	snprintf(file, sizeof(file), "options/%s", name);
	lua_pushboolean(L, tracefs_file_exists(in->ti, file) &&
			       tracefs_instance_file_write(in->ti, file, val) > 0);
	return 1;
}

/***
 * Internal: the instance removes this kprobe after its own events, when it
 * closes.
 * @function Instance:_hold
 * @param kp a Kprobe
 */
static int instance_hold(lua_State *L)
{
	dp_check_instance(L, 1);
	luaL_checkudata(L, 2, DP_KPROBE_MT);
	dp_instance_adopt(L, 1, 2, DP_CHILD_PROBE, NULL);
	return 0;
}

static const luaL_Reg instance_methods[] = {
	{"_hold", instance_hold},
	{"_option", instance_option},
	{"_tracer", instance_tracer},
	{"close", instance_close},
	{"name", instance_name},
	{"is_closed", instance_is_closed},
	{"dir", instance_dir},
	{"gone", instance_gone},
	{"read_file", instance_read_file},
	{"tracing", instance_tracing},
	{NULL, NULL},
};

static const luaL_Reg instance_meta[] = {
	{"__gc", instance_gc},
	{"__close", instance_close},
	{"__tostring", instance_tostring},
	{NULL, NULL},
};

void dp_instance_open(lua_State *L)
{
	/* made before any instance, so finalized after all of them */
	dp_on_close(L, "dropprobe.instances", instance_unload);
	luaL_newmetatable(L, DP_INSTANCE_MT);
	luaL_setfuncs(L, instance_meta, 0);
	luaL_newlib(L, instance_methods);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, -3, "Instance"); /* methods table, for the Lua side */
	lua_pop(L, 1);
	lua_pushcfunction(L, instance_new);
	lua_setfield(L, -2, "instance");
}

void dp_instance_event_made(struct dp_instance *in)
{
	in->nevents++;
}

void dp_instance_stack_trigger(struct dp_instance *in, int delta)
{
	in->stack_triggers += delta;
}

int dp_instance_stacked(const struct dp_instance *in)
{
	return !in->closed && in->stack_triggers > 0;
}
