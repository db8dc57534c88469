/*
 * util.c - argument checks, option tables and error messages shared by the
 * object files (the role luaposix gives _helpers.c).
 */
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tracefs.h>

int dp_custom_dir = 0;
volatile int dp_signal_caught = 0;

const char *dp_tracing_dir_arg(void)
{
	return dp_custom_dir ? tracefs_tracing_dir() : NULL;
}

void dp_check_fields(lua_State *L, int idx, const char *const allowed[])
{
	if (lua_isnoneornil(L, idx))
		return;
	luaL_checktype(L, idx, LUA_TTABLE);
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int ok = 0;
		if (lua_type(L, -2) == LUA_TSTRING) {
			const char *k = lua_tostring(L, -2);
			for (int i = 0; allowed[i]; i++)
				if (strcmp(k, allowed[i]) == 0) {
					ok = 1;
					break;
				}
		}
		if (!ok) {
			luaL_Buffer b;
			lua_pop(L, 1);
			luaL_buffinit(L, &b);
			for (int i = 0; allowed[i]; i++) {
				if (i)
					luaL_addstring(&b, ", ");
				luaL_addstring(&b, allowed[i]);
			}
			luaL_pushresult(&b);
			{
				const char *list = lua_tostring(L, -1);
				const char *key = luaL_tolstring(L, -2, NULL);
				luaL_error(L, "unknown option '%s' (allowed: %s)", key, list);
			}
		}
		lua_pop(L, 1);
	}
}

static int opt_get(lua_State *L, int idx, const char *key)
{
	if (lua_isnoneornil(L, idx))
		return 0;
	luaL_checktype(L, idx, LUA_TTABLE);
	return lua_getfield(L, idx, key) != LUA_TNIL ? 1 : (lua_pop(L, 1), 0);
}

const char *dp_opt_string(lua_State *L, int idx, const char *key, const char *def)
{
	const char *s;
	if (!opt_get(L, idx, key))
		return def;
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "option '%s' must be a string, got %s", key, luaL_typename(L, -1));
	s = lua_tostring(L, -1);
	lua_pop(L, 1); /* still anchored in the option table */
	return s;
}

lua_Integer dp_opt_integer(lua_State *L, int idx, const char *key, lua_Integer def)
{
	lua_Integer v;
	int isnum;
	if (!opt_get(L, idx, key))
		return def;
	v = lua_tointegerx(L, -1, &isnum);
	if (!isnum)
		luaL_error(L, "option '%s' must be an integer, got %s", key,
			   luaL_typename(L, -1));
	lua_pop(L, 1);
	return v;
}

int dp_opt_boolean(lua_State *L, int idx, const char *key, int def)
{
	int v;
	if (!opt_get(L, idx, key))
		return def;
	if (!lua_isboolean(L, -1))
		luaL_error(L, "option '%s' must be a boolean, got %s", key, luaL_typename(L, -1));
	v = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return v;
}

lua_Number dp_opt_number(lua_State *L, int idx, const char *key, lua_Number def)
{
	lua_Number v;
	int isnum;
	if (!opt_get(L, idx, key))
		return def;
	v = lua_tonumberx(L, -1, &isnum);
	if (!isnum)
		luaL_error(L, "option '%s' must be a number, got %s", key, luaL_typename(L, -1));
	lua_pop(L, 1);
	return v;
}

long dp_find_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return (long)i;
	}
	return -1;
}

const char *dp_check_command(lua_State *L, int arg, const char *what, size_t *len)
{
	size_t n;
	const char *s = luaL_checklstring(L, arg, &n);
	long bad = dp_find_control(s, n);
	if (bad >= 0) {
		char msg[256];
		snprintf(msg, sizeof(msg),
			 "%s refused: it contains a control character (byte 0x%02x at "
			 "position %ld); one write must stay one command",
			 what, (unsigned)(unsigned char)s[bad], bad + 1);
		lua_pushstring(L, msg);
		lua_error(L);
	}
	if (len)
		*len = n;
	return s;
}

int dp_name_ok(const char *s, size_t n, size_t maxlen)
{
	if (n == 0 || n > maxlen)
		return 0;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

int dp_kernel_error(lua_State *L, const char *what, const char *kernel, int err,
		    const char *hint)
{
	/* no "file:line:" prefix: the message is about the kernel, not a line */
	if (!kernel || !*kernel)
		kernel = strerror(err ? err : EIO);
	if (hint && *hint)
		lua_pushfstring(L, "%s: the kernel refused: %s (%s)", what, kernel, hint);
	else
		lua_pushfstring(L, "%s: the kernel refused: %s", what, kernel);
	return lua_error(L);
}

char *dp_error_last(struct tracefs_instance *ti)
{
	char *e = tracefs_error_last(ti);
	char *p, *out;
	size_t n;
	if (!e)
		return NULL;
	/* "[  154.307846] event filter parse error: error: Field not found\n
	 *    Command: bogus > 3\n               ^" -> drop the timestamp prefix and
	 * fold the lines into one. */
	p = e;
	if (*p == '[') {
		char *q = strchr(p, ']');
		if (q)
			p = q + 1;
	}
	while (*p == ' ')
		p++;
	n = strlen(p);
	out = malloc(n + 1);
	if (out) {
		size_t j = 0;
		int sp = 0;
		for (size_t i = 0; i < n; i++) {
			char c = p[i];
			if (c == '\n' || c == '\t' || c == ' ') {
				sp = 1;
				continue;
			}
			if (c == '^')
				continue; /* the caret line points into a folded command */
			if (sp && j)
				out[j++] = ' ';
			sp = 0;
			out[j++] = c;
		}
		out[j] = 0;
	}
	free(e);
	return out;
}

int dp_is_root(void)
{
	return geteuid() == 0;
}

int dp_proc_comm(long pid, char *buf, size_t len)
{
	char path[64];
	FILE *f;
	int ok;
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = 0;
	return ok;
}

void dp_on_close(lua_State *L, const char *key, lua_CFunction fn)
{
	lua_newuserdatauv(L, 1, 0);
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, fn);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	lua_setfield(L, LUA_REGISTRYINDEX, key);
}

double dp_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
