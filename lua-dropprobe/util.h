/*
 * util.h - helpers shared by the C files of dropprobe.core: option-table
 * checks, safe strings for control files, three-part error messages.
 */
#ifndef DROPPROBE_UTIL_H
#define DROPPROBE_UTIL_H

#include <stddef.h>
#include <lua.h>
#include <lauxlib.h>

/* longest instance, system or kprobe name */
#define DP_NAME_MAX 64

#define DP_INSTANCE_MT "dropprobe.Instance"
#define DP_EVENT_MT "dropprobe.Event"
#define DP_PIPE_MT "dropprobe.Pipe"
#define DP_RECORD_MT "dropprobe.Record"
#define DP_KPROBE_MT "dropprobe.Kprobe"

struct tracefs_instance;

/* Raise unless every string key of the table at idx is in allowed (NULL-terminated). */
void dp_check_fields(lua_State *L, int idx, const char *const allowed[]);

/* Optional typed fields of an option table (the table is at idx, may be absent). */
const char *dp_opt_string(lua_State *L, int idx, const char *key, const char *def);
lua_Integer dp_opt_integer(lua_State *L, int idx, const char *key, lua_Integer def);
lua_Number dp_opt_number(lua_State *L, int idx, const char *key, lua_Number def);
int dp_opt_boolean(lua_State *L, int idx, const char *key, int def);

/* A string argument that is safe to write as one command into a control file:
 * no control characters (newline, NUL, ...). Raises naming what it is. */
const char *dp_check_command(lua_State *L, int arg, const char *what, size_t *len);
/* The same check on a C string: returns the offending byte's index or -1. */
long dp_find_control(const char *s, size_t n);

/* A name made of [A-Za-z0-9_.-], not "." or "..", at most maxlen bytes. */
int dp_name_ok(const char *s, size_t n, size_t maxlen);

/*
 * Raise a kernel refusal: "<what>: <kernel said> (<hint>)". kernel may be
 * NULL (then strerror(err) is used). Never returns.
 */
int dp_kernel_error(lua_State *L, const char *what, const char *kernel, int err,
		    const char *hint);

/* The newest error_log entry of an instance, trimmed to its message lines;
 * malloc'd, or NULL when the log has nothing. */
char *dp_error_last(struct tracefs_instance *ti);

/* The comm of a live pid from /proc/<pid>/comm into buf; 0 if it is gone. */
int dp_proc_comm(long pid, char *buf, size_t len);

/* Call fn when the Lua state closes: a sentinel in the registry under key
 * whose __gc it is. Made before the objects fn releases, it is finalized
 * after them. */
void dp_on_close(lua_State *L, const char *key, lua_CFunction fn);

/* Seconds on CLOCK_MONOTONIC (the instances' trace_clock "mono"). */
double dp_mono(void);

/* Non-zero when the process may change tracefs (root); fake trees are exempt. */
int dp_is_root(void);
/* Set once dp.tracefs(dir) pointed the library at a tree of its own. */
extern int dp_custom_dir;
/* The tracing dir to hand to a libtracefs call that takes one: the tree
 * dp.tracefs(dir) set, or NULL (libtracefs finds the mounted one). */
const char *dp_tracing_dir_arg(void);
/* Last signal caught while a reader was waiting (SIGINT/SIGTERM), or 0. */
extern volatile int dp_signal_caught;

#endif
