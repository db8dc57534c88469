/*
 * pipe.c - dropprobe.Pipe: reading records one at a time with a timeout.
 *
 * Text mode: trace_pipe of an instance (non-blocking fd + poll), or a saved
 * trace file (dp.open). Lines are split in C and parsed by parse.c; a
 * "<stack trace>" entry is joined to the record before it on the same CPU,
 * so a record never comes out before its stack, and a record that waits for
 * a stack that does not come is handed out after `grace` seconds at most.
 */
#include "pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tracefs.h>

#include "parse.h"
#include "raw.h"

#define READ_CHUNK 65536

struct dp_pipe *dp_check_pipe(lua_State *L, int idx)
{
	struct dp_pipe *p = luaL_checkudata(L, idx, DP_PIPE_MT);
	if (p->closed)
		luaL_error(L, "attempt to use a closed pipe");
	return p;
}

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void dp_pipe_cpus(lua_State *L, struct dp_pipe *p, int cpu)
{
	int n = p->ncpu ? p->ncpu : 4;
	if (cpu < p->ncpu)
		return;
	if (cpu > 65535)
		luaL_error(L, "CPU number %d out of range", cpu);
	while (n <= cpu)
		n *= 2;
	{
		int *pend = realloc(p->pending, sizeof(int) * (size_t)n);
		long long *lc, *mc;
		if (!pend)
			luaL_error(L, "out of memory");
		p->pending = pend;
		lc = realloc(p->lost_cpu, sizeof(long long) * (size_t)n);
		if (!lc)
			luaL_error(L, "out of memory");
		p->lost_cpu = lc;
		mc = realloc(p->mark_cpu, sizeof(long long) * (size_t)n);
		if (!mc)
			luaL_error(L, "out of memory");
		p->mark_cpu = mc;
	}
	for (int i = p->ncpu; i < n; i++) {
		p->pending[i] = LUA_NOREF;
		p->lost_cpu[i] = 0;
		p->mark_cpu[i] = 0;
	}
	p->ncpu = n;
}

static void enqueue(struct dp_pipe *p, int ref, int cpu)
{
	/* the queue has room: callers call ensure_q_room first */
	struct dp_qent *e = &p->q[(p->qhead + p->qlen) % p->qcap];
	e->ref = ref;
	e->cpu = cpu;
	p->qlen++;
}

static void ensure_q_room(lua_State *L, struct dp_pipe *p)
{
	if (p->qlen == p->qcap) {
		size_t ncap = p->qcap ? p->qcap * 2 : 256;
		struct dp_qent *nq = malloc(sizeof(*nq) * ncap);
		if (!nq)
			luaL_error(L, "out of memory");
		for (size_t i = 0; i < p->qlen; i++)
			nq[i] = p->q[(p->qhead + i) % p->qcap];
		free(p->q);
		p->q = nq;
		p->qhead = 0;
		p->qcap = ncap;
	}
}

int dp_pipe_push(lua_State *L, struct dp_pipe *p, int refs, int cpu)
{
	int ref;
	ensure_q_room(L, p);
	ref = luaL_ref(L, refs);
	enqueue(p, ref, cpu);
	return ref;
}

void dp_pipe_lost(lua_State *L, struct dp_pipe *p, int cpu, long long n)
{
	dp_pipe_cpus(L, p, cpu);
	if (n > 0) {
		p->lost += n;
		p->lost_cpu[cpu] += n;
	}
	/* the next record of that CPU carries the gap; -1: count unknown (the
	 * overrun counters in stats() still count it) */
	if (n < 0 || p->mark_cpu[cpu] < 0)
		p->mark_cpu[cpu] = -1;
	else
		p->mark_cpu[cpu] += n;
}

void dp_pipe_mark_lost(lua_State *L, struct dp_pipe *p, int cpu)
{
	if (cpu < p->ncpu && p->mark_cpu[cpu]) {
		lua_pushinteger(L, p->mark_cpu[cpu]);
		dp_setkey(L, p->kidx, DP_K_LOST_BEFORE);
		p->mark_cpu[cpu] = 0;
	}
}

/* no record waits for a stack any more (grace expired, or end of file) */
static void close_all_pending(struct dp_pipe *p)
{
	for (int c = 0; c < p->ncpu; c++)
		p->pending[c] = LUA_NOREF;
	p->collecting = 0;
}

static void push_span(lua_State *L, struct dp_span s)
{
	lua_pushlstring(L, s.p, s.n);
}

/* A printed value as raw mode gives it: an integer where it fits, and a
 * 64-bit address or unsigned number beyond it as 16 hex digits (the way
 * %p prints an unhashed pointer) */
static void push_value(lua_State *L, struct dp_span v)
{
	long long i;
	unsigned long long u;
	char hex[16];
	switch (dp_span_number(v, &i, &u)) {
	case DP_NUM_INT:
		lua_pushinteger(L, (lua_Integer)i);
		break;
	case DP_NUM_WIDE:
		dp_hex16(hex, u);
		lua_pushlstring(L, hex, 16);
		break;
	default:
		lua_pushlstring(L, v.p, v.n);
	}
}

/* fields[f] = syms[name][f][fields[f]] for the fields a table is given for
 * (a kprobe's reason argument named like the tracepoint's); the record's
 * name and fields table on top */
static void name_fields(lua_State *L, int syms)
{
	if (lua_rawget(L, syms) != LUA_TTABLE) { /* consumes the name */
		lua_pop(L, 1);
		return;
	}
	lua_pushnil(L);
	while (lua_next(L, -2)) { /* field -> {[n]=name} */
		lua_pushvalue(L, -2);
		if (lua_rawget(L, -5) == LUA_TNUMBER && lua_isinteger(L, -1) &&
		    lua_rawget(L, -2) == LUA_TSTRING) {
			lua_pushvalue(L, -3);
			lua_insert(L, -2);
			lua_rawset(L, -6);
		} else {
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/* comm of a live pid from /proc, cached in refs.comm; "<...>" if gone */
static void push_live_comm(lua_State *L, int refs, long pid)
{
	char buf[64];
	if (lua_getfield(L, refs, "comm") != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, refs, "comm");
	}
	if (lua_rawgeti(L, -1, pid) == LUA_TSTRING) {
		lua_remove(L, -2);
		return;
	}
	lua_pop(L, 1);
	if (dp_proc_comm(pid, buf, sizeof(buf)))
		lua_pushstring(L, buf);
	else
		lua_pushliteral(L, "<...>");
	lua_pushvalue(L, -1);
	lua_rawseti(L, -3, pid);
	lua_remove(L, -2);
}

int dp_pipe_holding(struct dp_pipe *p)
{
	return p->mode == DP_MODE_FILE || p->mode == DP_MODE_DAT ||
	       (p->inst && !p->inst->closed && p->inst->stack_triggers > 0);
}

/* One complete line; refs and names are absolute stack indexes. */
static void text_line(lua_State *L, struct dp_pipe *p, const char *s, size_t n, int refs,
		      int names)
{
	struct dp_line ln;
	enum dp_line_kind k = dp_parse_line(s, n, &ln);

	if (k != DP_LINE_FRAME)
		p->collecting = 0;
	switch (k) {
	case DP_LINE_EMPTY:
	case DP_LINE_COMMENT:
		return;
	case DP_LINE_BAD:
		p->bad_lines++;
		return;
	case DP_LINE_LOST:
		dp_pipe_lost(L, p, ln.cpu, ln.lost);
		return;
	case DP_LINE_FRAME:
		if (p->stack_ref == LUA_NOREF || !p->collecting)
			return; /* frames of a stack that belongs to no record */
		lua_rawgeti(L, refs, p->stack_ref);
		lua_rawgeti(L, p->kidx, DP_K_STACK);
		lua_rawget(L, -2);
		push_span(L, ln.frame);
		lua_rawseti(L, -2, ++p->stack_n);
		lua_pop(L, 2);
		return;
	case DP_LINE_USTACK:
		return;
	case DP_LINE_STACK:
		dp_pipe_cpus(L, p, ln.cpu);
		if (p->pending[ln.cpu] == LUA_NOREF) {
			p->orphan_stacks++;
			p->stack_ref = LUA_NOREF;
			return;
		}
		/* the frames follow in the same read (text pipe) or the next lines */
		p->stack_ref = p->pending[ln.cpu];
		p->pending[ln.cpu] = LUA_NOREF;
		p->stack_n = 0;
		p->collecting = 1;
		lua_rawgeti(L, refs, p->stack_ref);
		lua_createtable(L, 24, 0);
		dp_setkey(L, p->kidx, DP_K_STACK);
		lua_pop(L, 1);
		return;
	case DP_LINE_EVENT:
		break;
	}
	dp_pipe_cpus(L, p, ln.cpu);
	p->nread++;
	lua_createtable(L, 0, 10);
	lua_rawgeti(L, p->kidx, 0);
	lua_setmetatable(L, -2);
	push_span(L, ln.name);
	if (names) {
		lua_pushvalue(L, -1);
		if (lua_rawget(L, names) != LUA_TNIL) {
			lua_rawgeti(L, p->kidx, DP_K_SYSTEM);
			lua_insert(L, -2);
			lua_rawset(L, -4);
		} else {
			lua_pop(L, 1);
		}
	}
	dp_setkey(L, p->kidx, DP_K_NAME);
	if (ln.fn_ip.n) {
		lua_pushliteral(L, "ftrace");
		dp_setkey(L, p->kidx, DP_K_SYSTEM);
	}
	if (p->mode == DP_MODE_TEXT && ln.comm.n == 5 && memcmp(ln.comm.p, "<...>", 5) == 0 &&
	    ln.pid > 0)
		push_live_comm(L, refs, ln.pid); /* the kernel had no cmdline saved yet */
	else
		push_span(L, ln.comm);
	dp_setkey(L, p->kidx, DP_K_COMM);
	lua_pushinteger(L, ln.pid);
	dp_setkey(L, p->kidx, DP_K_PID);
	lua_pushinteger(L, ln.cpu);
	dp_setkey(L, p->kidx, DP_K_CPU);
	lua_pushnumber(L, (lua_Number)ln.ts_ns / 1e9);
	dp_setkey(L, p->kidx, DP_K_TS);
	push_span(L, ln.flags);
	dp_setkey(L, p->kidx, DP_K_FLAGS);
	push_span(L, ln.payload);
	dp_setkey(L, p->kidx, DP_K_PAYLOAD);
	{
		struct dp_span key, val;
		size_t pos = 0;
		lua_createtable(L, 0, 6);
		while (dp_payload_next(ln.payload, &pos, &key, &val)) {
			push_span(L, key);
			push_value(L, val);
			lua_rawset(L, -3);
		}
		if (ln.fn_ip.n) { /* the function tracer: ftrace:function's fields */
			push_span(L, ln.fn_ip);
			lua_setfield(L, -2, "ip");
			push_span(L, ln.fn_parent);
			lua_setfield(L, -2, "parent_ip");
		}
		if (p->sidx) {
			push_span(L, ln.name);
			lua_pushvalue(L, -2);
			lua_insert(L, -2); /* fields, fields, name */
			name_fields(L, p->sidx);
			lua_pop(L, 1);
		}
		dp_setkey(L, p->kidx, DP_K_FIELDS);
	}
	dp_pipe_mark_lost(L, p, ln.cpu);
	{
		int ref = dp_pipe_push(L, p, refs, ln.cpu);
		/* the record may still get a stack: it holds the queue until the
		 * CPU's next entry, or grace expires */
		p->pending[ln.cpu] = dp_pipe_holding(p) ? ref : LUA_NOREF;
	}
}

/* Split the buffer into lines; keep a partial last line. */
static void text_feed(lua_State *L, struct dp_pipe *p, int refs, int names, int final)
{
	size_t start = 0;
	for (size_t i = 0; i < p->len; i++) {
		if (p->buf[i] == '\n') {
			text_line(L, p, p->buf + start, i - start, refs, names);
			start = i + 1;
		}
	}
	if (final && start < p->len) {
		text_line(L, p, p->buf + start, p->len - start, refs, names);
		start = p->len;
	}
	if (start) {
		memmove(p->buf, p->buf + start, p->len - start);
		p->len -= start;
	}
	/* a line longer than the buffer is no trace line: drop it */
	if (p->len == p->cap) {
		p->bad_lines++;
		p->len = 0;
	}
}

/* Read once without blocking. 1: data, 0: nothing now, -1: EOF/error */
static int text_read_some(struct dp_pipe *p)
{
	ssize_t r;
	if (p->len == p->cap)
		return 1;
	r = read(p->fd, p->buf + p->len, p->cap - p->len);
	if (r > 0) {
		p->len += (size_t)r;
		return 1;
	}
	if (r == 0)
		return p->mode == DP_MODE_FILE ? -1 : 0;
	if (errno == EAGAIN || errno == EINTR)
		return 0;
	return -1;
}

static int pop_ready(lua_State *L, struct dp_pipe *p, int refs)
{
	int ref, cpu;
	if (!p->qlen)
		return 0;
	ref = p->q[p->qhead].ref;
	cpu = p->q[p->qhead].cpu;
	if (ref == p->stack_ref && p->collecting)
		return 0; /* frames may still come in the next read */
	if (cpu < p->ncpu && p->pending[cpu] == ref)
		return 0; /* its stack may still come: records stay in order */
	p->qhead = (p->qhead + 1) % p->qcap;
	p->qlen--;
	if (ref == p->stack_ref)
		p->stack_ref = LUA_NOREF;
	lua_rawgeti(L, refs, ref);
	luaL_unref(L, refs, ref);
	return 1;
}

static int any_pending(struct dp_pipe *p)
{
	for (int c = 0; c < p->ncpu; c++)
		if (p->pending[c] != LUA_NOREF)
			return 1;
	return 0;
}

/*
 * pipe:read([timeout]) -> record | nil, "timeout" | nil, "eof" |
 * nil, "interrupted". timeout in seconds; nil waits.
 */
static int pipe_read(lua_State *L)
{
	struct dp_pipe *p = dp_check_pipe(L, 1);
	double timeout = luaL_optnumber(L, 2, -1);
	double deadline, last_data;
	int refs, names;

	lua_settop(L, 2);
	lua_getiuservalue(L, 1, DP_PIPE_UV_REFS);
	refs = lua_gettop(L);
	/* the common case: a record decoded earlier is waiting */
	if (pop_ready(L, p, refs))
		return 1;
	deadline = timeout >= 0 ? now_mono() + timeout : -1;
	last_data = now_mono();
	lua_getfield(L, LUA_REGISTRYINDEX, DP_KEYS_REG);
	p->kidx = lua_gettop(L);
	names = lua_getiuservalue(L, 1, DP_PIPE_UV_NAMES) == LUA_TTABLE ? lua_gettop(L) : 0;
	p->sidx = lua_getiuservalue(L, 1, DP_PIPE_UV_SYMS) == LUA_TTABLE ? lua_gettop(L) : 0;
	for (;;) {
		int r, ms;
		double now;
		if (pop_ready(L, p, refs))
			return 1;
		if (p->eof) {
			close_all_pending(p);
			if (pop_ready(L, p, refs))
				return 1;
			luaL_pushfail(L);
			lua_pushliteral(L, "eof");
			return 2;
		}
		if (p->inst && p->inst->closed) {
			luaL_pushfail(L);
			lua_pushliteral(L, "closed");
			return 2;
		}
		if (p->mode == DP_MODE_DAT) {
			if (dp_dat_fill(L, p, refs) <= 0)
				p->eof = 1;
			continue;
		}
		if (p->mode == DP_MODE_RAW) {
			now = now_mono();
			ms = deadline < 0 ? 250 : (int)((deadline - now) * 1000);
			if (ms > 250)
				ms = 250; /* poll wakes only at buffer_percent: read partial pages */
			if (any_pending(p) && ms > (int)(p->grace * 1000))
				ms = (int)(p->grace * 1000);
			if (ms < 0)
				ms = 0;
			r = dp_raw_fill(L, p, refs, ms);
			if (r < 0 || dp_signal_caught) {
				luaL_pushfail(L);
				lua_pushliteral(L, "interrupted");
				return 2;
			}
			if (r > 0) {
				last_data = now_mono();
				continue;
			}
			if (any_pending(p) && now_mono() - last_data >= p->grace) {
				close_all_pending(p);
				continue;
			}
			if (deadline >= 0 && now_mono() >= deadline) {
				luaL_pushfail(L);
				lua_pushliteral(L, "timeout");
				return 2;
			}
			continue;
		}
		r = text_read_some(p);
		if (r > 0) {
			last_data = now_mono();
			text_feed(L, p, refs, names, 0);
			if (p->mode == DP_MODE_TEXT)
				p->collecting = 0; /* trace_pipe reads end on entry boundaries */
			continue;
		}
		if (r < 0) {
			if (p->len)
				text_feed(L, p, refs, names, 1);
			p->eof = 1;
			continue;
		}
		/* nothing to read now: wait */
		now = now_mono();
		if (any_pending(p) && now - last_data >= p->grace) {
			close_all_pending(p);
			continue;
		}
		if (deadline >= 0 && now >= deadline) {
			luaL_pushfail(L);
			lua_pushliteral(L, "timeout");
			return 2;
		}
		ms = deadline < 0 ? 1000 : (int)((deadline - now) * 1000) + 1;
		if (any_pending(p)) {
			int g = (int)((p->grace - (now - last_data)) * 1000) + 1;
			if (g < ms)
				ms = g;
		}
		if (ms > 1000)
			ms = 1000; /* wake now and then to notice signals */
		{
			struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
			if (poll(&pfd, 1, ms) < 0 && errno == EINTR) {
				luaL_pushfail(L);
				lua_pushliteral(L, "interrupted");
				return 2;
			}
			if (dp_signal_caught) {
				luaL_pushfail(L);
				lua_pushliteral(L, "interrupted");
				return 2;
			}
		}
	}
}

static void pipe_close_impl(lua_State *L, struct dp_pipe *p, int idx)
{
	if (p->closed)
		return;
	p->closed = 1;
	if (p->mode == DP_MODE_RAW || p->mode == DP_MODE_DAT)
		dp_raw_close(L, p);
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	free(p->buf);
	p->buf = NULL;
	free(p->pending);
	free(p->lost_cpu);
	free(p->mark_cpu);
	free(p->q);
	p->pending = NULL;
	p->lost_cpu = p->mark_cpu = NULL;
	p->q = NULL;
	p->ncpu = 0;
	p->qlen = p->qcap = 0;
	/* drop the records still held and the link to the instance */
	lua_pushnil(L);
	lua_setiuservalue(L, idx, DP_PIPE_UV_REFS);
	if (p->inst) {
		lua_getiuservalue(L, idx, DP_PIPE_UV_INST);
		if (lua_getiuservalue(L, -1, DP_INST_UV_PIPES) == LUA_TTABLE) {
			lua_pushvalue(L, idx);
			lua_pushnil(L);
			lua_rawset(L, -3);
		}
		lua_pop(L, 2);
	}
}

void dp_pipe_close_at(lua_State *L, int idx)
{
	struct dp_pipe *p = luaL_testudata(L, idx, DP_PIPE_MT);
	if (p)
		pipe_close_impl(L, p, lua_absindex(L, idx));
}

static int pipe_close(lua_State *L)
{
	struct dp_pipe *p = luaL_checkudata(L, 1, DP_PIPE_MT);
	pipe_close_impl(L, p, 1);
	return 0;
}

/* pipe:fd() -> the fd to poll (text: trace_pipe; raw: cpu0's buffer) */
static int pipe_fd(lua_State *L)
{
	struct dp_pipe *p = dp_check_pipe(L, 1);
	lua_pushinteger(L, p->mode == DP_MODE_RAW ? dp_raw_fd(p) : p->fd);
	return 1;
}

/* pipe:_stats() -> counters the reader saw itself (the Lua side adds the
 * kernel's per-CPU overrun/dropped counts) */
static int pipe_stats(lua_State *L)
{
	struct dp_pipe *p = luaL_checkudata(L, 1, DP_PIPE_MT);
	if (p->mode == DP_MODE_RAW || p->mode == DP_MODE_DAT)
		return dp_raw_stats(L, p);
	lua_createtable(L, 0, 6);
	lua_pushinteger(L, p->nread);
	lua_setfield(L, -2, "read");
	lua_pushinteger(L, p->lost);
	lua_setfield(L, -2, "lost_marked");
	lua_pushinteger(L, p->orphan_stacks);
	lua_setfield(L, -2, "orphan_stacks");
	lua_pushinteger(L, p->bad_lines);
	lua_setfield(L, -2, "bad_lines");
	lua_newtable(L);
	for (int c = 0; c < p->ncpu; c++) {
		if (!p->lost_cpu || !p->lost_cpu[c])
			continue;
		lua_pushinteger(L, p->lost_cpu[c]);
		lua_rawseti(L, -2, c);
	}
	lua_setfield(L, -2, "lost_cpu");
	lua_pushstring(L, p->mode == DP_MODE_FILE ? "file" : "text");
	lua_setfield(L, -2, "mode");
	return 1;
}

static int pipe_tostring(lua_State *L)
{
	struct dp_pipe *p = luaL_checkudata(L, 1, DP_PIPE_MT);
	static const char *const modes[] = {"text", "file", "raw", "trace.dat"};
	if (p->closed)
		lua_pushfstring(L, DP_PIPE_MT " %s (closed)", modes[p->mode]);
	else if (p->inst)
		lua_pushfstring(L, DP_PIPE_MT " %s on \"%s\" (%I records read)", modes[p->mode],
				p->inst->name, (lua_Integer)p->nread);
	else
		lua_pushfstring(L, DP_PIPE_MT " %s (%I records read)", modes[p->mode],
				(lua_Integer)p->nread);
	return 1;
}

struct dp_pipe *dp_pipe_alloc(lua_State *L, enum dp_pipe_mode mode)
{
	struct dp_pipe *p = lua_newuserdatauv(L, sizeof(*p), DP_PIPE_NUV);
	memset(p, 0, sizeof(*p));
	p->fd = -1;
	p->mode = mode;
	p->closed = 1; /* until opened */
	p->stack_ref = LUA_NOREF;
	p->grace = 0.1;
	luaL_setmetatable(L, DP_PIPE_MT);
	lua_newtable(L);
	lua_setiuservalue(L, -2, DP_PIPE_UV_REFS);
	return p;
}

static void pipe_buffer(lua_State *L, struct dp_pipe *p)
{
	p->cap = READ_CHUNK;
	p->buf = malloc(p->cap);
	if (!p->buf)
		luaL_error(L, "out of memory");
}

/* core.pipe(inst, { mode = "text"|"raw", names = {}, grace = s, ... }) */
static int pipe_new(lua_State *L)
{
	struct dp_instance *in = dp_check_instance(L, 1);
	const char *mode;
	struct dp_pipe *p;
	double grace;
	luaL_checktype(L, 2, LUA_TTABLE);
	mode = dp_opt_string(L, 2, "mode", "text");
	grace = dp_opt_number(L, 2, "grace", 0.1);
	if (strcmp(mode, "text") && strcmp(mode, "raw"))
		return luaL_error(L, "bad mode '%s' (text or raw)", mode);
	p = dp_pipe_alloc(L, mode[0] == 't' ? DP_MODE_TEXT : DP_MODE_RAW);
	p->inst = in;
	p->grace = grace;
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, DP_PIPE_UV_INST);
	if (lua_getfield(L, 2, "names") == LUA_TTABLE)
		lua_setiuservalue(L, -2, DP_PIPE_UV_NAMES);
	else
		lua_pop(L, 1);
	if (lua_getfield(L, 2, "symbols") == LUA_TTABLE)
		lua_setiuservalue(L, -2, DP_PIPE_UV_SYMS);
	else
		lua_pop(L, 1);
	if (p->mode == DP_MODE_TEXT) {
		p->fd = tracefs_instance_file_open(in->ti, "trace_pipe", O_RDONLY | O_NONBLOCK);
		if (p->fd < 0)
			return dp_kernel_error(L, "cannot open the instance's trace_pipe", NULL,
					       errno, NULL);
		pipe_buffer(L, p);
		p->closed = 0;
	} else {
		p->closed = 0;
		dp_raw_start(L, p, 2); /* raises after closing what it opened */
	}
	/* the instance closes its pipes before it removes itself */
	lua_getiuservalue(L, 1, DP_INST_UV_PIPES);
	lua_pushvalue(L, -2);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	return 1;
}

/* core.open_text(path [, names]) -> Pipe over a saved trace text */
static int pipe_open_text(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct dp_pipe *p = dp_pipe_alloc(L, DP_MODE_FILE);
	p->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (p->fd < 0)
		return luaL_error(L, "cannot open trace file '%s': %s", path, strerror(errno));
	if (lua_istable(L, 2)) {
		lua_pushvalue(L, 2);
		lua_setiuservalue(L, -2, DP_PIPE_UV_NAMES);
	}
	pipe_buffer(L, p);
	p->closed = 0;
	return 1;
}

/* pipe:instance() -> the Instance it reads, or nil for files */
static int pipe_instance(lua_State *L)
{
	luaL_checkudata(L, 1, DP_PIPE_MT);
	lua_getiuservalue(L, 1, DP_PIPE_UV_INST);
	return 1;
}

static const luaL_Reg pipe_methods[] = {
	{"instance", pipe_instance},
	{"read", pipe_read},
	{"close", pipe_close},
	{"fd", pipe_fd},
	{"_stats", pipe_stats},
	{NULL, NULL},
};

static const luaL_Reg pipe_meta[] = {
	{"__gc", pipe_close},
	{"__close", pipe_close},
	{"__tostring", pipe_tostring},
	{NULL, NULL},
};

void dp_pipe_open(lua_State *L)
{
	luaL_newmetatable(L, DP_PIPE_MT);
	luaL_setfuncs(L, pipe_meta, 0);
	luaL_newlib(L, pipe_methods);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, -3, "Pipe");
	lua_pop(L, 1);
	luaL_newmetatable(L, DP_RECORD_MT); /* __tostring comes from the Lua side */
	{
		static const char *const keys[] = {"name", "system", "comm", "pid", "cpu", "ts",
						   "flags", "payload", "fields", "stack",
						   "lost_before"};
		lua_createtable(L, DP_K_MAX, 1);
		lua_pushvalue(L, -2);
		lua_rawseti(L, -2, 0);
		for (int i = 1; i < DP_K_MAX; i++) {
			lua_pushstring(L, keys[i - 1]);
			lua_rawseti(L, -2, i);
		}
		lua_setfield(L, LUA_REGISTRYINDEX, DP_KEYS_REG);
	}
	lua_setfield(L, -2, "Record");
	lua_pushcfunction(L, pipe_new);
	lua_setfield(L, -2, "pipe");
	lua_pushcfunction(L, pipe_open_text);
	lua_setfield(L, -2, "open_text");
}
