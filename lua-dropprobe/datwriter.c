/*
 * datwriter.c - dropprobe.Recorder: an instance's events written as a
 * trace.dat that stock `trace-cmd report` and KernelShark read. The
 * per-CPU sub-buffers are read from trace_pipe_raw (rawbuf.c) and kept as
 * the kernel wrote them, one unlinked temporary file per CPU beside the
 * output (a full disk shows while recording; kill -9 leaves no temporary
 * file behind); nothing is decoded. The file itself is written by
 * libtracecmd, the library trace-cmd writes its own with: the headers
 * (header_page, header_event, the ftrace formats, the formats of the
 * events recorded, kallsyms, printk formats) when the recorder is made,
 * the options, saved cmdlines and the per-CPU pages (flyrecord, file
 * version 6) when it finishes.
 *
 * libtracecmd 1.3 (trace-cmd 3.1) exports its output functions from
 * libtracecmd.so.1 but declares them in trace-cmd-private.h, which it does
 * not install. The declarations below are that header's, pinned to the
 * 1.3 ABI; the Makefile refuses to build against another major.minor.
 */

/***
 * @submodule dropprobe.core
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <tracefs.h>
#include <trace-cmd.h>

#include "core.h"
#include "instance.h"
#include "rawbuf.h"
#include "util.h"

/* --- libtracecmd 1.3 (trace-cmd 3.1.x trace-cmd-private.h), pinned --- */
struct tracecmd_output;
struct tracecmd_option;
struct tracecmd_event_list {
	struct tracecmd_event_list *next;
	const char *glob;
};
struct tracecmd_output *tracecmd_output_create_fd(int fd);
int tracecmd_output_set_version(struct tracecmd_output *handle, int file_version);
int tracecmd_output_set_trace_dir(struct tracecmd_output *handle, const char *tracing_dir);
int tracecmd_output_write_headers(struct tracecmd_output *handle, struct tracecmd_event_list *list);
void tracecmd_set_quiet(struct tracecmd_output *handle, bool set_quiet);
void tracecmd_set_out_clock(struct tracecmd_output *handle, const char *clock);
int tracecmd_write_cmdlines(struct tracecmd_output *handle);
int tracecmd_append_cpu_data(struct tracecmd_output *handle, int cpus,
			     char *const *cpu_data_files);
void tracecmd_output_close(struct tracecmd_output *handle);
#define DP_DAT_VERSION 6                 /* read by every trace-cmd and KernelShark */
/* ---------------------------------------------------------------------- */

#define DP_RECORDER_MT "dropprobe.Recorder"
#define DP_GLOBS_MAX 64
#define DP_PAGES_A_CALL 256 /* per CPU, per read call */

struct recorder {
	struct dp_instance *inst; /* alive while the uservalue holds it */
	struct dp_rawbuf rb;
	int *tmp;               /* per CPU: an unlinked file of its pages */
	long long *bytes;       /* per CPU */
	long long pages, bytes_total;
	struct tracecmd_output *out;
	int out_fd;
	int closed, finished;
	int werr; /* errno of a failed page write */
	char path[4096];
};

static struct recorder *check_recorder(lua_State *L, int idx)
{
	struct recorder *r = luaL_checkudata(L, idx, DP_RECORDER_MT);
	if (r->closed)
		luaL_error(L, "attempt to use a closed recorder");
	return r;
}

/* The directory a file would be made in (a copy in buf). */
static const char *dir_of(const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "%s", path);
	return dirname(buf);
}

/*
 * What a trace.dat's headers take beyond the pages: kallsyms mostly (about
 * 10 MB on a distribution kernel: /proc/kallsyms reads as 0 bytes to stat,
 * and reading it to count costs what writing it does).
 */
static unsigned long long headers_estimate(void)
{
	return 16ULL << 20;
}

/*
 * Whether path can be written and its filesystem holds at least the
 * headers plus min_free bytes; NULL or why not (into msg).
 */
static const char *path_check(const char *path, unsigned long long min_free, char *msg, size_t len)
{
	char dbuf[4096];
	const char *dir = dir_of(path, dbuf, sizeof(dbuf));
	struct stat st;
	struct statvfs vfs;
	unsigned long long need, have;
	if (!*path)
		return "an empty file name";
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return "is a directory";
		if (access(path, W_OK) < 0) {
			snprintf(msg, len, "cannot write it: %s", strerror(errno));
			return msg;
		}
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(msg, len, "no directory '%s'", dir);
		return msg;
	}
	if (access(dir, W_OK | X_OK) < 0) {
		snprintf(msg, len, "cannot make files in '%s': %s", dir, strerror(errno));
		return msg;
	}
	if (statvfs(dir, &vfs) == 0) {
		need = headers_estimate() + min_free;
		have = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
		if (have < need) {
			snprintf(msg, len, "'%s' has %llu kB free, a recording needs at least %llu kB "
				 "(the kernel's symbols and formats, and room for pages)",
				 dir, have / 1024, need / 1024);
			return msg;
		}
	}
	return NULL;
}

/***
 * Whether a trace.dat can be written at path: a file that can be written,
 * in a directory that can take files, on a filesystem with room for the
 * headers (the kernel's symbols) and `min_free` bytes of pages. Nothing is
 * made.
 * @function dat_check
 * @tparam string path
 * @tparam[opt=1048576] integer min_free bytes
 * @treturn true|nil true, or nil and why not
 */
static int dat_check(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	lua_Integer min_free = luaL_optinteger(L, 2, 1 << 20);
	char msg[4600];
	const char *why = path_check(path, (unsigned long long)(min_free > 0 ? min_free : 0), msg,
				     sizeof(msg));
	if (why) {
		luaL_pushfail(L);
		lua_pushstring(L, why);
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* One page out to its CPU's file (the rawbuf sink). */
static int page_out(void *ctx, int cpu, const void *page, int len)
{
	struct recorder *r = ctx;
	const char *p = page;
	ssize_t done = 0;
	while (done < len) {
		ssize_t w = write(r->tmp[cpu], p + done, (size_t)(len - done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r->werr = w == 0 ? EIO : errno;
			return -1;
		}
		done += w;
	}
	r->bytes[cpu] += len;
	r->bytes_total += len;
	r->pages++;
	return 0;
}

static void recorder_release(struct recorder *r)
{
	if (r->out) {
		tracecmd_output_close(r->out); /* closes out_fd */
		r->out = NULL;
		r->out_fd = -1;
	}
	if (r->out_fd >= 0)
		close(r->out_fd);
	r->out_fd = -1;
	for (int c = 0; r->tmp && c < r->rb.ncpu; c++)
		if (r->tmp[c] >= 0)
			close(r->tmp[c]);
	free(r->tmp);
	free(r->bytes);
	r->tmp = NULL;
	r->bytes = NULL;
	dp_rawbuf_close(&r->rb);
}

/* The event globs of opts.events ("system/event") into list. */
static int globs_of(lua_State *L, int opts, struct tracecmd_event_list *list, int max)
{
	int n = 0;
	if (lua_getfield(L, opts, "events") == LUA_TTABLE) {
		for (int i = 1; n < max; i++) {
			const char *g;
			size_t len;
			if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
				lua_pop(L, 1);
				break;
			}
			g = lua_tolstring(L, -1, &len);
			if (dp_find_control(g, len) >= 0 || strstr(g, "..") || g[0] == '/')
				luaL_error(L, "recorder: bad event '%s'", g);
			lua_pop(L, 1); /* anchored in the table */
			list[n].glob = g;
			list[n].next = NULL;
			if (n > 0)
				list[n - 1].next = &list[n];
			n++;
		}
	}
	lua_pop(L, 1);
	return n;
}

static const char *recorder_setup(lua_State *L, struct recorder *r, int opts, char *msg, size_t len)
{
	struct tracecmd_event_list list[DP_GLOBS_MAX];
	char dbuf[4096];
	const char *dir = dir_of(r->path, dbuf, sizeof(dbuf));
	const char *fail, *clock = dp_opt_string(L, opts, "clock", "mono");
	int nglobs = globs_of(L, opts, list, DP_GLOBS_MAX);
	fail = dp_rawbuf_open_pages(&r->rb, r->inst->ti);
	if (fail)
		return fail;
	r->tmp = malloc(sizeof(int) * (size_t)r->rb.ncpu);
	r->bytes = calloc((size_t)r->rb.ncpu, sizeof(long long));
	if (!r->tmp || !r->bytes)
		return "out of memory";
	for (int c = 0; c < r->rb.ncpu; c++)
		r->tmp[c] = -1;
	for (int c = 0; c < r->rb.ncpu; c++) {
		char name[4200];
		snprintf(name, sizeof(name), "%s/.dropprobe-record-%d-cpu%d-XXXXXX", dir, (int)getpid(), c);
		r->tmp[c] = mkostemp(name, O_CLOEXEC);
		if (r->tmp[c] < 0) {
			snprintf(msg, len, "cannot make a temporary file in '%s': %s", dir, strerror(errno));
			return msg;
		}
		unlink(name); /* gone with the process, whatever ends it */
	}
	r->out_fd = open(r->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (r->out_fd < 0) {
		snprintf(msg, len, "cannot write '%s': %s", r->path, strerror(errno));
		return msg;
	}
	r->out = tracecmd_output_create_fd(r->out_fd);
	if (!r->out)
		return "libtracecmd could not start the file";
	tracecmd_set_quiet(r->out, true);
	if (tracecmd_output_set_version(r->out, DP_DAT_VERSION) < 0)
		return "libtracecmd refused file version 6";
	if (dp_tracing_dir_arg())
		tracecmd_output_set_trace_dir(r->out, dp_tracing_dir_arg());
	tracecmd_set_out_clock(r->out, clock);
	errno = 0;
	if (tracecmd_output_write_headers(r->out, nglobs ? list : NULL) < 0) {
		snprintf(msg, len, "writing the headers (formats, kallsyms) to '%s' failed: %s", r->path,
			 errno ? strerror(errno) : "libtracecmd refused");
		return msg;
	}
	return NULL;
}

/***
 * A Recorder: the instance's per-CPU pages kept as the kernel wrote them,
 * then written as a trace.dat at path. The headers (formats, kallsyms,
 * printk formats) are written at once; reading starts with the first
 * `read`.
 * @function recorder
 * @param inst an Instance
 * @tparam string path
 * @tparam table opts `events` (the globs of the events recorded,
 *   "system/event": their formats go into the file; the ftrace formats
 *   always do), `clock` (the instance's
 *   trace_clock, default "mono")
 * @return a Recorder
 */
static int recorder_new(lua_State *L)
{
	static const char *const opts[] = {"events", "clock", NULL};
	struct dp_instance *in = dp_check_instance(L, 1);
	const char *path = luaL_checkstring(L, 2);
	struct recorder *r;
	const char *fail;
	char msg[4600];
	luaL_checktype(L, 3, LUA_TTABLE);
	dp_check_fields(L, 3, opts);
	if (strlen(path) >= sizeof(r->path))
		return luaL_argerror(L, 2, "path too long");
	r = lua_newuserdatauv(L, sizeof(*r), 1);
	memset(r, 0, sizeof(*r));
	r->out_fd = -1;
	r->inst = in;
	snprintf(r->path, sizeof(r->path), "%s", path);
	luaL_setmetatable(L, DP_RECORDER_MT);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 1); /* the instance outlives its recorder */
	errno = 0;
	fail = recorder_setup(L, r, 3, msg, sizeof(msg));
	if (fail) {
		int e = errno;
		recorder_release(r);
		r->closed = 1;
		if (fail != msg && e)
			return luaL_error(L, "record: %s: %s", fail, strerror(e));
		return luaL_error(L, "record: %s", fail);
	}
	dp_instance_adopt(L, 1, -1, DP_CHILD_READER, NULL);
	return 1;
}

/***
 * Keep the pages the buffers have now; when none, wait up to `ms` for some.
 * @function Recorder:read
 * @tparam[opt=0] integer ms
 * @treturn integer|nil pages kept, or nil and "interrupted" (a signal), or
 *   nil and why a page could not be written (a full disk: the pages kept
 *   before it are still written by `finish`)
 */
static int recorder_read(lua_State *L)
{
	struct recorder *r = check_recorder(L, 1);
	int ms = (int)luaL_optinteger(L, 2, 0);
	long n;
	if (r->finished)
		return luaL_error(L, "recorder: already finished");
	n = dp_rawbuf_pages(&r->rb, ms, DP_PAGES_A_CALL, page_out, r);
	if (n == -1) {
		luaL_pushfail(L);
		lua_pushliteral(L, "interrupted");
		return 2;
	}
	if (n == -2) {
		luaL_pushfail(L);
		lua_pushfstring(L, "a page could not be kept beside '%s': %s", r->path, strerror(r->werr));
		return 2;
	}
	lua_pushinteger(L, n);
	return 1;
}

/***
 * Keep every page the buffers still have (reading stops the kernel from
 * writing nothing: call it once tracing is off).
 * @function Recorder:drain
 * @treturn integer|nil pages kept, or nil and why a page could not be written
 */
static int recorder_drain(lua_State *L)
{
	struct recorder *r = check_recorder(L, 1);
	long total = 0, n;
	if (r->finished)
		return luaL_error(L, "recorder: already finished");
	while ((n = dp_rawbuf_pages(&r->rb, 0, DP_PAGES_A_CALL, page_out, r)) > 0)
		total += n;
	if (n == -2) {
		luaL_pushfail(L);
		lua_pushfstring(L, "a page could not be kept beside '%s': %s", r->path, strerror(r->werr));
		return 2;
	}
	lua_pushinteger(L, total);
	return 1;
}

/***
 * Write the trace.dat: the saved cmdlines and every CPU's pages with the
 * clock they were stamped with (the recorder's `clock`), then close the
 * file and the instance's buffers. No TRACECLOCK option is written: the
 * clock after the CPU offsets says it, and libtracecmd 1.3's reader loses
 * the first of the two names when a file has both.
 * @function Recorder:finish
 * @treturn table `{ path, pages, bytes, per_cpu = {[cpu] = bytes} }`
 * @raise a write that failed (a full disk): what was written is said
 */
static int recorder_finish(lua_State *L)
{
	struct recorder *r = check_recorder(L, 1);
	char **names;
	int ncpu = r->rb.ncpu, ok = 1, e = 0;
	const char *step = NULL;
	if (r->finished)
		return luaL_error(L, "recorder: already finished");
	r->finished = 1;
	names = calloc((size_t)ncpu, sizeof(char *));
	if (!names)
		return luaL_error(L, "out of memory");
	for (int c = 0; c < ncpu && ok; c++) {
		if (asprintf(&names[c], "/proc/self/fd/%d", r->tmp[c]) < 0) {
			names[c] = NULL;
			ok = 0;
			step = "out of memory";
		}
	}
	errno = 0;
	/* a v6 file without instance buffers: libtracecmd warns it found no
	 * description of "" (trace-cmd record's files are the same) */
	tracecmd_set_loglevel(TEP_LOG_ERROR);
	if (ok && tracecmd_write_cmdlines(r->out) < 0) {
		ok = 0;
		step = "the saved cmdlines";
		e = errno;
	}
	if (ok && tracecmd_append_cpu_data(r->out, ncpu, names) < 0) {
		ok = 0;
		step = "the pages";
		e = errno;
	}
	tracecmd_set_loglevel(TEP_LOG_WARNING); /* libtracecmd's default */
	if (ok && fsync(r->out_fd) < 0) {
		ok = 0;
		step = "the file to disk";
		e = errno;
	}
	for (int c = 0; c < ncpu; c++)
		free(names[c]);
	free(names);
	lua_createtable(L, 0, 4);
	lua_pushstring(L, r->path);
	lua_setfield(L, -2, "path");
	lua_pushinteger(L, r->pages);
	lua_setfield(L, -2, "pages");
	lua_pushinteger(L, r->bytes_total);
	lua_setfield(L, -2, "bytes");
	lua_createtable(L, ncpu, 0);
	for (int c = 0; c < ncpu; c++) {
		lua_pushinteger(L, r->bytes[c]);
		lua_rawseti(L, -2, c);
	}
	lua_setfield(L, -2, "per_cpu");
	recorder_release(r);
	r->closed = 1;
	if (!ok)
		return luaL_error(L, "record: writing %s to '%s' failed%s%s (%I pages, %I kB, had been "
				  "kept; the file is not complete: dp.open refuses it)",
				  step, r->path, e ? ": " : "", e ? strerror(e) : "", (lua_Integer)r->pages,
				  (lua_Integer)(r->bytes_total / 1024));
	return 1;
}

/***
 * What was kept so far.
 * @function Recorder:stats
 * @treturn table `{ pages, bytes, per_cpu = {[cpu] = bytes} }`
 */
static int recorder_stats(lua_State *L)
{
	struct recorder *r = luaL_checkudata(L, 1, DP_RECORDER_MT);
	lua_createtable(L, 0, 3);
	lua_pushinteger(L, r->pages);
	lua_setfield(L, -2, "pages");
	lua_pushinteger(L, r->bytes_total);
	lua_setfield(L, -2, "bytes");
	lua_createtable(L, r->rb.ncpu, 0);
	for (int c = 0; r->bytes && c < r->rb.ncpu; c++) {
		lua_pushinteger(L, r->bytes[c]);
		lua_rawseti(L, -2, c);
	}
	lua_setfield(L, -2, "per_cpu");
	return 1;
}

/***
 * Close without writing the pages (idempotent): the buffers' files are
 * closed, the temporary files go; a file not finished keeps only its
 * headers.
 * @function Recorder:close
 */
static int recorder_close(lua_State *L)
{
	struct recorder *r = luaL_checkudata(L, 1, DP_RECORDER_MT);
	if (!r->closed) {
		recorder_release(r);
		r->closed = 1;
	}
	return 0;
}

static int recorder_tostring(lua_State *L)
{
	struct recorder *r = luaL_checkudata(L, 1, DP_RECORDER_MT);
	lua_pushfstring(L, "dropprobe.Recorder \"%s\" (%I pages%s)", r->path, (lua_Integer)r->pages,
			r->closed ? (r->finished ? ", written" : ", closed") : "");
	return 1;
}

static const luaL_Reg recorder_methods[] = {
	{"read", recorder_read},
	{"drain", recorder_drain},
	{"finish", recorder_finish},
	{"stats", recorder_stats},
	{"close", recorder_close},
	{NULL, NULL},
};

static const luaL_Reg recorder_meta[] = {
	{"__gc", recorder_close},
	{"__close", recorder_close},
	{"__tostring", recorder_tostring},
	{NULL, NULL},
};

void dp_datwriter_open(lua_State *L)
{
	luaL_newmetatable(L, DP_RECORDER_MT);
	luaL_setfuncs(L, recorder_meta, 0);
	luaL_newlib(L, recorder_methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	lua_pushcfunction(L, recorder_new);
	lua_setfield(L, -2, "recorder");
	lua_pushcfunction(L, dat_check);
	lua_setfield(L, -2, "dat_check");
}
