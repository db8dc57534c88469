/*
 * core.c - luaopen_dropprobe_core: module functions (where tracefs is,
 * systems and events, signals) and each object file's xxx_open.
 */
#include "core.h"
#include "format.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tracefs.h>

#define DP_DEFAULT_TRACEFS "/sys/kernel/tracing"

static char *custom_dir;

/* The mount point of tracefs from /proc/self/mounts, into buf; 0 if none. */
static int find_mount(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char dev[256], dir[4096], type[64];
	int found = 0;
	if (!f)
		return 0;
	while (fscanf(f, "%255s %4095s %63s %*s %*d %*d", dev, dir, type) == 3) {
		if (strcmp(type, "tracefs") == 0) {
			/* prefer the standard place when it is mounted twice */
			if (!found || strcmp(dir, DP_DEFAULT_TRACEFS) == 0)
				snprintf(buf, len, "%s", dir);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

int dp_ensure_tracefs(lua_State *L, char *buf, size_t len)
{
	if (custom_dir) {
		snprintf(buf, len, "%s", custom_dir);
		return 0;
	}
	if (!dp_is_root()) {
		lua_pushliteral(L, "dropprobe needs root: tracefs control files are writable only "
				   "with CAP_SYS_ADMIN (run it with sudo)");
		return -1;
	}
	if (!find_mount(buf, len)) {
		struct stat st;
		if (stat(DP_DEFAULT_TRACEFS, &st) < 0) {
			lua_pushfstring(L, "tracefs is not mounted and %s does not exist: this "
					   "kernel lacks CONFIG_TRACING (tracefs)",
					DP_DEFAULT_TRACEFS);
			return -1;
		}
		if (mount("nodev", DP_DEFAULT_TRACEFS, "tracefs", 0, NULL) < 0) {
			lua_pushfstring(L, "tracefs is not mounted and mounting it at %s failed: "
					   "%s (mount -t tracefs nodev %s by hand)",
					DP_DEFAULT_TRACEFS, strerror(errno), DP_DEFAULT_TRACEFS);
			return -1;
		}
		snprintf(buf, len, "%s", DP_DEFAULT_TRACEFS);
	}
	return 0;
}

/*
 * core.tracefs([dir | false]) -> the tracing dir. With dir, the library is
 * pointed at that tree (tests); false goes back to the real one. Without,
 * tracefs is found, or mounted at /sys/kernel/tracing when root.
 */
static int core_tracefs(lua_State *L)
{
	char buf[4096];
	if (lua_isstring(L, 1)) {
		const char *dir = lua_tostring(L, 1);
		struct stat st;
		char *copy;
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
			return luaL_error(L, "tracing dir '%s' is not a directory", dir);
		copy = strdup(dir);
		if (!copy)
			return luaL_error(L, "out of memory");
		if (tracefs_set_tracing_dir(copy) < 0) {
			free(copy);
			return luaL_error(L, "cannot use '%s' as tracing dir", dir);
		}
		free(custom_dir);
		custom_dir = copy;
		dp_custom_dir = 1;
		lua_pushstring(L, custom_dir);
		return 1;
	}
	if (lua_isboolean(L, 1) && !lua_toboolean(L, 1)) {
		tracefs_set_tracing_dir(NULL);
		free(custom_dir);
		custom_dir = NULL;
		dp_custom_dir = 0;
	}
	if (custom_dir) {
		lua_pushstring(L, custom_dir);
		return 1;
	}
	if (dp_ensure_tracefs(L, buf, sizeof(buf)) < 0)
		return lua_error(L);
	lua_pushstring(L, buf);
	return 1;
}

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
	return push_list(L, tracefs_event_systems(custom_dir));
}

static int core_events(lua_State *L)
{
	size_t n;
	const char *sys = luaL_checklstring(L, 1, &n);
	if (!dp_name_ok(sys, n, DP_NAME_MAX))
		return luaL_argerror(L, 1, "bad system name");
	return push_list(L, tracefs_system_events(custom_dir, sys));
}

static void on_signal(int sig)
{
	dp_signal_caught = sig;
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
	{"isatty", core_isatty},
	{"tracefs", core_tracefs},
	{"systems", core_systems},
	{"events", core_events},
	{"catch_signals", core_catch_signals},
	{"signal", core_signal},
	{"is_root", core_is_root},
	{"check_command", core_check_command},
	{NULL, NULL},
};

int luaopen_dropprobe_core(lua_State *L);

int luaopen_dropprobe_core(lua_State *L)
{
	luaL_newlib(L, core_funcs);
	dp_instance_open(L);
	dp_event_open(L);
	dp_pipe_open(L);
	dp_raw_open(L);
	dp_kprobe_open(L);
	dp_btf_open(L);
	dp_format_open(L);
	return 1;
}
