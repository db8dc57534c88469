/*
 * core.c - luaopen_dropprobe_core: module functions (systems and events,
 * signals, clocks) and each object file's xxx_open.
 */
#include "core.h"
#include "util.h"
#include "tracing.h"

#include <dirent.h>
#include <errno.h>
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

/* core.systems() -> sorted? no: kernel order; the Lua side sorts */
static int core_systems(lua_State *L)
{
	return push_list(L, tracefs_event_systems(dp_tracefs_custom()));
}

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

/* core.catch_hup() - SIGHUP no longer ends the process; core.hup() tells
 * whether one came since the last call (a long-running exporter reopens
 * what it writes) */
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

static int core_hup(lua_State *L)
{
	lua_pushboolean(L, hup_caught);
	hup_caught = 0;
	return 1;
}

/*
 * core.catch_signals() - SIGINT and SIGTERM end a waiting read with
 * nil, "interrupted" instead of killing the process; core.signal() tells
 * which came (and forgets it).
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

static int core_is_root(lua_State *L)
{
	lua_pushboolean(L, dp_is_root());
	return 1;
}

/* core.check_command(s, what) -> s, or raises for control characters */
static int core_check_command(lua_State *L)
{
	dp_check_command(L, 1, luaL_optstring(L, 2, "string"), NULL);
	lua_settop(L, 1);
	return 1;
}

/* core.now() -> CLOCK_MONOTONIC seconds (the instances' trace_clock "mono") */
static int core_now(lua_State *L)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
	return 1;
}

/* core.sleep(s) -> true, or nil, "interrupted" when SIGINT/SIGTERM (with
 * catch_signals) ended it early */
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

/* core.isatty(fd) -> whether the fd is a terminal */
static int core_isatty(lua_State *L)
{
	lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
	return 1;
}

/* core.dir(path) -> { name, ... } (sorted, without . and ..) | nil, message:
 * the entries of a directory (tracefs instances, /run/dropprobe), without a
 * shell */
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
	return 1;
}
