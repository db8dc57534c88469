/*
 * tracefs.c - where tracefs is: found in /proc/self/mounts, mounted at
 * /sys/kernel/tracing when root and not mounted, or a directory given by
 * the caller (a fake tree for tests, through tracefs_set_tracing_dir).
 */

/***
 * @submodule dropprobe.core
 */
#include "core.h"
#include "util.h"
#include "tracing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <tracefs.h>

#define DP_DEFAULT_TRACEFS "/sys/kernel/tracing"

static char *custom_dir;

const char *dp_tracefs_custom(void)
{
	return custom_dir;
}

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

#define DP_TRACEFS_MAGIC 0x74726163 /* "trac", linux/magic.h */

int dp_tracefs_mounted(const char *dir)
{
	struct statfs sf;
	if (custom_dir)
		return 1; /* a tree the caller gave: nothing is mounted there */
	return dir && statfs(dir, &sf) == 0 && sf.f_type == DP_TRACEFS_MAGIC;
}

int dp_tracefs_mount_private(char *buf, size_t len)
{
	if (len < sizeof("/tmp/dropprobe-tracefs-XXXXXX"))
		return -1;
	snprintf(buf, len, "/tmp/dropprobe-tracefs-XXXXXX");
	if (!mkdtemp(buf))
		return -1;
	if (mount("nodev", buf, "tracefs", 0, NULL) < 0) {
		int e = errno;
		rmdir(buf);
		errno = e;
		return -1;
	}
	return 0;
}

void dp_tracefs_umount_private(const char *dir)
{
	(void)umount2(dir, MNT_DETACH);
	(void)rmdir(dir);
}

/***
 * The tracing directory: found, or mounted at /sys/kernel/tracing as root.
 * With `dir`, the library is pointed at that tree (tests with a fake tree);
 * `false` goes back to the real one.
 * @function tracefs
 * @tparam[opt] string|boolean dir
 * @treturn string the directory
 * @raise no tracefs (and not root to mount it), a dir that is not one
 */
static int tracefs_dir(lua_State *L)
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

void dp_tracefs_open(lua_State *L)
{
	lua_pushcfunction(L, tracefs_dir);
	lua_setfield(L, -2, "tracefs");
}
