/*
 * core.c - luaopen_dropprobe_core: module functions (systems and events,
 * signals, clocks) and each object file's xxx_open.
 */

/***
 * The C core: the tracefs objects behind `dropprobe`, documented here from
 * its C files. Use it through `require "dropprobe"`, which adds option
 * defaults and reason names on top. Its objects:
 *
 * Instance: A private tracefs instance (`instance.c`). Made by
 * `dropprobe.instance`.
 *
 * Event: One event inside an Instance (`event.c`). Made by `Instance:event`.
 *
 * Pipe: A reader of records (`pipe.c`, the read loop) over one source:
 * `src_text.c` (trace_pipe), `src_raw.c` (the per-CPU binary buffers),
 * `src_file.c` (a saved text), `src_dat.c` (a trace.dat). Made by
 * `Instance:pipe` (`core.text_pipe`, `core.raw_pipe`), `Instance:records`
 * and `dropprobe.open` (`core.open_text`, `core.open_dat`). Closing its
 * instance closes it.
 *
 * Kprobe: A kprobe in the group `dropprobe` (`kprobe.c`). Made by
 * `dropprobe.kprobe`.
 *
 * Counter: Counting in C (`count.c`): events read straight from the raw
 * buffers (or a trace.dat, or a saved text) into a C hash table keyed by
 * fields and, with a `stacktrace` key, by the stack that follows the event
 * on its CPU. Made by `core.counter(inst, spec)`, `core.count_dat(path,
 * spec)`, `core.count_text(path, spec)`; `dropprobe.hist` is the public
 * face. spec: `system`, `event`, `keys` (fields, `.sym`/`.sym-offset`,
 * `stacktrace`), `values` (fields summed), `size` (most entries), `systems`
 * (live).
 * @module dropprobe.core
 */
#include "core.h"
#include "util.h"
#include "tracing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tracefs.h>

static int push_list(lua_State *L, char **list)
{
	int n = 0;
	lua_newtable(L);
	if (!list)
		return 1;
	for (char **p = list; *p; p++) {
		lua_pushstring(L, *p);
		lua_rawseti(L, -2, ++n);
	}
	tracefs_list_free(list);
	return 1;
}

/***
 * The event systems of this kernel's tracefs (libtracefs), in the kernel's
 * order (`dropprobe.systems` sorts them).
 * @function systems
 * @treturn {string,...}
 */
static int core_systems(lua_State *L)
{
	return push_list(L, tracefs_event_systems(dp_tracefs_custom()));
}

/***
 * The events of one system (libtracefs), in the kernel's order.
 * @function events
 * @tparam string system
 * @treturn {string,...}
 */
static int core_events(lua_State *L)
{
	size_t n;
	const char *sys = luaL_checklstring(L, 1, &n);
	if (!dp_name_ok(sys, n, DP_NAME_MAX))
		return luaL_argerror(L, 1, "bad system name");
	return push_list(L, tracefs_system_events(dp_tracefs_custom(), sys));
}

static void on_signal(int sig)
{
	dp_signal_caught = sig;
}

static volatile sig_atomic_t hup_caught;

static void on_hup(int sig)
{
	(void)sig;
	hup_caught = 1;
}

/***
 * From now on SIGHUP no longer ends the process; `hup` tells whether one
 * came (a long-running exporter writes at once).
 * @function catch_hup
 */
static int core_catch_hup(lua_State *L)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_hup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	(void)L;
	return 0;
}

/***
 * Whether a SIGHUP came since the last call (after `catch_hup`).
 * @function hup
 * @treturn boolean
 */
static int core_hup(lua_State *L)
{
	lua_pushboolean(L, hup_caught);
	hup_caught = 0;
	return 1;
}

/***
 * From now on SIGINT and SIGTERM end a waiting read or sleep with nil,
 * "interrupted" instead of the process; `signal` tells which came.
 * @function catch_signals
 */
static int core_catch_signals(lua_State *L)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	(void)L;
	return 0;
}

/***
 * The SIGINT or SIGTERM caught (after `catch_signals`), or nothing; with
 * `forget`, it is forgotten once told.
 * @function signal
 * @tparam[opt] boolean forget
 * @treturn integer|nil the signal number
 */
static int core_signal(lua_State *L)
{
	int s = dp_signal_caught;
	if (lua_toboolean(L, 1))
		dp_signal_caught = 0;
	if (!s)
		return 0;
	lua_pushinteger(L, s);
	return 1;
}

/***
 * Whether the process may change tracefs (effective uid 0); a tree set with
 * `tracefs(dir)` is exempt.
 * @function is_root
 * @treturn boolean
 */
static int core_is_root(lua_State *L)
{
	lua_pushboolean(L, dp_is_root());
	return 1;
}

/***
 * A string that goes into one tracefs control file as one command: raises
 * when it holds a control character (a newline would be a second command).
 * @function check_command
 * @tparam string s
 * @tparam string what what it is, for the message
 * @treturn string s
 */
static int core_check_command(lua_State *L)
{
	dp_check_command(L, 1, luaL_optstring(L, 2, "string"), NULL);
	lua_settop(L, 1);
	return 1;
}

/***
 * Seconds on CLOCK_MONOTONIC (the clock of the instances' `trace_clock`
 * "mono", so record timestamps compare with it).
 * @function now
 * @treturn number
 */
static int core_now(lua_State *L)
{
	lua_pushnumber(L, dp_mono());
	return 1;
}

/***
 * The inode of the network namespace a path names (`/proc/PID/ns/net`,
 * `/run/netns/NAME`: what `stat -L -c %i` gives), asked of the kernel
 * (`NS_GET_NSTYPE`): any other file, or another kind of namespace, is
 * refused.
 * @function netns_inode
 * @tparam string path
 * @treturn integer|nil the inode, or nil and why
 */
static int core_netns_inode(lua_State *L)
{
	struct stat st;
	const char *path = luaL_checkstring(L, 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC), type, e;
	if (fd < 0) {
		luaL_pushfail(L);
		lua_pushfstring(L, "%s: %s", path, strerror(errno));
		return 2;
	}
	type = ioctl(fd, NS_GET_NSTYPE);
	e = errno;
	if (type != CLONE_NEWNET || fstat(fd, &st) < 0) {
		close(fd);
		luaL_pushfail(L);
		lua_pushfstring(L, "%s: %s", path, type < 0 && e != ENOTTY && e != EINVAL ? strerror(e)
				: type < 0 ? "not a namespace" : "not a network namespace");
		return 2;
	}
	close(fd);
	lua_pushinteger(L, (lua_Integer)st.st_ino);
	return 1;
}

/***
 * Sleep `s` seconds; with `catch_signals`, SIGINT or SIGTERM ends it early.
 * @function sleep
 * @tparam number s
 * @treturn true|nil true, or nil and "interrupted"
 */
static int core_sleep(lua_State *L)
{
	double s = luaL_checknumber(L, 1);
	struct timespec ts;
	if (s < 0)
		s = 0;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !dp_signal_caught)
		;
	if (dp_signal_caught) {
		luaL_pushfail(L);
		lua_pushliteral(L, "interrupted");
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Whether a file descriptor is a terminal.
 * @function isatty
 * @tparam integer fd
 * @treturn boolean
 */
static int core_isatty(lua_State *L)
{
	lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
	return 1;
}

/***
 * The entries of a directory, sorted, without `.` and `..` (no shell).
 * @function dir
 * @tparam string path
 * @treturn table|nil names, or nil and a message
 */
static int core_dir(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;
	if (!d) {
		int err = errno;
		luaL_pushfail(L);
		lua_pushfstring(L, "%s: %s", path, strerror(err));
		return 2;
	}
	lua_newtable(L);
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		lua_pushstring(L, e->d_name);
		lua_rawseti(L, -2, ++n);
	}
	closedir(d);
	/* sorted: table.sort */
	lua_getglobal(L, "table");
	if (lua_getfield(L, -1, "sort") == LUA_TFUNCTION) {
		lua_pushvalue(L, -3);
		lua_call(L, 1, 0);
		lua_pop(L, 1);
	} else {
		lua_pop(L, 2);
	}
	return 1;
}

static const luaL_Reg core_funcs[] = {
	{"dir", core_dir},
	{"now", core_now},
	{"netns_inode", core_netns_inode},
	{"sleep", core_sleep},
	{"isatty", core_isatty},
	{"systems", core_systems},
	{"events", core_events},
	{"catch_signals", core_catch_signals},
	{"catch_hup", core_catch_hup},
	{"hup", core_hup},
	{"signal", core_signal},
	{"is_root", core_is_root},
	{"check_command", core_check_command},
	{NULL, NULL},
};

int luaopen_dropprobe_core(lua_State *L);

int luaopen_dropprobe_core(lua_State *L)
{
	luaL_newlib(L, core_funcs);
	dp_tracefs_open(L);
	dp_format_open(L);
	dp_btf_open(L);
	dp_record_open(L);
	dp_instance_open(L);
	dp_event_open(L);
	dp_kprobe_open(L);
	dp_pipe_open(L);
	dp_decode_open(L);
	/* the record sources: one file and one line each */
	dp_src_text_open(L);
	dp_src_file_open(L);
	dp_src_raw_open(L);
	dp_src_dat_open(L);
	dp_count_open(L);
	dp_pcapfile_open(L);
	dp_btf_funcs_open(L);
	dp_src_path_open(L);
	dp_datwriter_open(L);
	return 1;
}
