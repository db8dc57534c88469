/*
 * raw.c - raw mode of dropprobe.Pipe: the per-CPU binary ring buffers
 * (per_cpu/cpuN/trace_pipe_raw) read whole sub-buffers at a time without
 * blocking, decoded with kbuffer and the instance's event formats through
 * libtraceevent. No ring-buffer format is parsed by hand.
 *
 * Per record the hot loop pushes only what it returns; event, field, reason
 * and symbol names are Lua strings made once and kept in the pipe's caches.
 * A stacktrace trigger's ftrace:kernel_stack entry is joined to the record
 * before it on the same CPU (it may start that CPU's next page).
 */
#include "pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event-parse.h>
#include <kbuffer.h>
#include <tracefs.h>

#include "format.h"
#include "parse.h"
#include "raw.h"

void dp_raw_free(struct dp_raw *r)
{
	if (!r)
		return;
	dp_dat_close(r); /* a trace.dat's libtracecmd handles (and its tep) */
	for (int i = 0; i < r->ncpu; i++) {
		if (r->fds && r->fds[i] >= 0)
			close(r->fds[i]);
		if (r->kb && r->kb[i])
			kbuffer_free(r->kb[i]);
		if (r->page)
			free(r->page[i]);
	}
	for (int i = 0; i < r->nevs; i++)
		free(r->evs[i].fd);
	free(r->evs);
	free(r->fds);
	free(r->kb);
	free(r->page);
	free(r->next);
	free(r->next_ts);
	free(r->nread_cpu);
	if (r->tep && !r->dat)
		tep_free(r->tep); /* a trace.dat's tep belongs to libtracecmd */
	free(r);
}

void dp_raw_close(lua_State *L, struct dp_pipe *p)
{
	if (p->raw)
		luaL_unref(L, LUA_REGISTRYINDEX, p->raw->cache_ref);
	dp_raw_free(p->raw);
	p->raw = NULL;
}

int dp_raw_fd(struct dp_pipe *p)
{
	return p->raw && p->raw->ncpu ? p->raw->fds[0] : -1;
}

/* Which fields print as symbols (%pS/%ps in the print fmt). */
static int field_is_symbolic(struct tep_event *ev, const char *name)
{
	const char *f = ev->print_fmt.format;
	struct tep_print_arg *a = ev->print_fmt.args;
	if (!f)
		return 0;
	for (; *f && a; f++) {
		if (*f != '%')
			continue;
		if (f[1] == '%') {
			f++;
			continue;
		}
		/* skip flags/width/length to the conversion */
		f++;
		while (*f && strchr("-+ #0123456789.lhzj", *f))
			f++;
		if (!*f)
			break;
		if (*f == 'p' && (f[1] == 'S' || f[1] == 's' || f[1] == 'F' || f[1] == 'f')) {
			if (a->type == TEP_PRINT_FIELD && a->field.name &&
			    strcmp(a->field.name, name) == 0)
				return 1;
		}
		a = a->next;
	}
	return 0;
}

/* An address, or an unsigned number beyond a Lua integer: 16 hex digits,
 * as %p prints an unhashed pointer and as text mode gives it. */
static void push_hex(lua_State *L, unsigned long long v)
{
	char hex[16];
	dp_hex16(hex, v);
	lua_pushlstring(L, hex, 16);
}

/* A code address by its name: skb:kfree_skb's `location` is printed %pS
 * from 6.2 and %p before; a record symbolizes it on every kernel. */
static int is_code_address(struct tep_format_field *f)
{
	return strcmp(f->name, "location") == 0 && strchr(f->type, '*') && f->size == 8;
}

int dp_raw_cache(lua_State *L, struct dp_raw *r)
{
	return lua_rawgeti(L, LUA_REGISTRYINDEX, r->cache_ref);
}

int dp_raw_push_cache(lua_State *L, struct dp_raw *r)
{
	int base;
	dp_raw_cache(L, r);
	base = lua_gettop(L);
	lua_getfield(L, base, "sym");
	lua_getfield(L, base, "comm");
	lua_getfield(L, base, "ev");
	luaL_getmetatable(L, DP_RECORD_MT);
	lua_remove(L, base);
	return base;
}

void dp_raw_new_cache(lua_State *L, struct dp_raw *r)
{
	lua_createtable(L, 0, 3);
	lua_newtable(L);
	lua_setfield(L, -2, "ev");
	lua_newtable(L);
	lua_setfield(L, -2, "sym");
	lua_newtable(L);
	lua_setfield(L, -2, "comm");
	r->cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Build (once) what decoding an event needs. */
static struct evinfo *event_info(lua_State *L, struct dp_raw *r, int id)
{
	struct tep_event *ev;
	struct evinfo *ei;
	struct tep_format_field *f;
	int n = 0, idx = 2, top;
	for (int i = 0; i < r->nevs; i++)
		if (r->evs[i].id == id)
			return &r->evs[i];
	ev = tep_find_event(r->tep, id);
	if (!ev)
		return NULL;
	ei = realloc(r->evs, sizeof(*ei) * (size_t)(r->nevs + 1));
	if (!ei)
		luaL_error(L, "out of memory");
	r->evs = ei;
	ei = &r->evs[r->nevs];
	memset(ei, 0, sizeof(*ei));
	ei->id = id;
	ei->ev = ev;
	for (f = ev->format.fields; f; f = f->next)
		n++;
	ei->fd = calloc((size_t)(n ? n : 1), sizeof(struct fdesc));
	if (!ei->fd)
		luaL_error(L, "out of memory");
	r->nevs++;
	/* the Lua side of the cache: names, symbol tables */
	lua_createtable(L, 2 + 2 * n, 1);
	lua_pushstring(L, ev->name);
	lua_rawseti(L, -2, 1);
	lua_pushstring(L, ev->system ? ev->system : "");
	lua_rawseti(L, -2, 2);
	dp_push_symbols(L, ev); /* { field = {[n]=name} } */
	/* tables the caller gave for fields the format has none for (the
	 * kernel's reasons for a kprobe's reason argument) */
	top = lua_gettop(L);
	dp_raw_cache(L, r);
	if (lua_getfield(L, -1, "over") == LUA_TTABLE &&
	    lua_getfield(L, -1, ev->name) == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			lua_pushvalue(L, -2);
			if (lua_rawget(L, -7) == LUA_TNIL) {
				lua_pop(L, 1);
				lua_pushvalue(L, -2);
				lua_insert(L, -2);
				lua_rawset(L, -7);
			} else {
				lua_pop(L, 2);
			}
		}
	}
	lua_settop(L, top);
	lua_setfield(L, -2, "syms");
	for (f = ev->format.fields; f; f = f->next) {
		struct fdesc *d = &ei->fd[ei->nf++];
		d->f = f;
		d->name_idx = ++idx;
		lua_pushstring(L, f->name);
		lua_rawseti(L, -2, idx);
		lua_getfield(L, -1, "syms");
		d->has_syms = lua_getfield(L, -1, f->name) == LUA_TTABLE;
		if (d->has_syms) {
			d->syms_idx = ++idx;
			lua_rawseti(L, -3, idx); /* the table, by index: no lookup per record */
			lua_pop(L, 1);
		} else {
			lua_pop(L, 2);
		}
		/* libtraceevent calls u8 arrays strings too: only char is text */
		if ((f->flags & TEP_FIELD_IS_STRING) && strstr(f->type, "char"))
			d->kind = FK_STRING;
		else if (f->flags & (TEP_FIELD_IS_ARRAY | TEP_FIELD_IS_DYNAMIC))
			d->kind = FK_BYTES;
		else if (d->has_syms)
			d->kind = FK_ENUM;
		else if (field_is_symbolic(ev, f->name) || is_code_address(f)) {
			d->kind = FK_SYMBOL;
			d->addr_idx = ++idx;
			lua_pushfstring(L, "%s_addr", f->name);
			lua_rawseti(L, -2, idx);
		} else if (strchr(f->type, '*') && f->size == 8)
			d->kind = FK_POINTER;
		else if (f->flags & TEP_FIELD_IS_SIGNED)
			d->kind = FK_SIGNED;
		else
			d->kind = FK_UNSIGNED;
	}
	dp_raw_cache(L, r);
	lua_getfield(L, -1, "ev");
	lua_pushvalue(L, -3);
	lua_rawseti(L, -2, id);
	lua_pop(L, 3);
	return ei;
}

/* Push "sym+0xoff/0xsize" for a kernel address (cached), or the hex address. */
static void push_symbol(lua_State *L, struct dp_raw *r, int symtab, unsigned long long addr)
{
	const char *name;
	unsigned long long start;
	unsigned long size;
	char buf[512];
	if (lua_rawgeti(L, symtab, (lua_Integer)addr) != LUA_TNIL)
		return;
	lua_pop(L, 1);
	if (addr && tep_find_function_info(r->tep, addr, &name, &start, &size) && name) {
		if (size)
			snprintf(buf, sizeof(buf), "%s+0x%llx/0x%lx", name, addr - start, size);
		else
			snprintf(buf, sizeof(buf), "%s+0x%llx", name, addr - start);
		lua_pushstring(L, buf);
	} else {
		snprintf(buf, sizeof(buf), "0x%llx", addr);
		lua_pushstring(L, buf);
	}
	lua_pushvalue(L, -1);
	lua_rawseti(L, symtab, (lua_Integer)addr);
}

/* The kernel's latency flags column, e.g. "..s1." */
static void push_flags(lua_State *L, unsigned flags, unsigned pc)
{
	char s[6];
	int nmi = flags & 0x40, hard = flags & 0x08, soft = flags & 0x10;
	s[0] = (flags & 0x01) ? 'd' : (flags & 0x80) ? 'b' : '.';
	switch (flags & (0x04 | 0x20)) {
	case 0x04 | 0x20: s[1] = 'N'; break;
	case 0x04: s[1] = 'n'; break;
	case 0x20: s[1] = 'p'; break;
	default: s[1] = (flags & 0x02) ? 'L' : '.'; break;
	}
	s[2] = (nmi && hard) ? 'Z' : nmi ? 'z' : (hard && soft) ? 'H' : hard ? 'h' : soft ? 's' : '.';
	s[3] = (pc & 0xf) ? "0123456789abcdef"[pc & 0xf] : '.';
	s[4] = ((pc >> 4) & 0xf) ? "0123456789abcdef"[(pc >> 4) & 0xf] : '.';
	s[5] = 0;
	lua_pushlstring(L, s, 5);
}

static void push_comm(lua_State *L, struct dp_raw *r, int commtab, int pid)
{
	const char *c;
	char buf[64];
	if (lua_rawgeti(L, commtab, pid) != LUA_TNIL)
		return;
	lua_pop(L, 1);
	if (pid > 0 && !r->dat && !tep_is_pid_registered(r->tep, pid) && !r->cmdlines_reloaded) {
		/* a pid new since the pipe opened: the kernel's saved_cmdlines may
		 * know it (reloaded once per fill, not per record) */
		tracefs_load_cmdlines(dp_custom_dir ? tracefs_tracing_dir() : NULL, r->tep);
		r->cmdlines_reloaded = 1;
	}
	if (pid == 0) {
		lua_pushliteral(L, "<idle>");
	} else if ((c = tep_data_comm_from_pid(r->tep, pid)) && strcmp(c, "<...>") != 0) {
		lua_pushstring(L, c);
	} else if (r->dat) {
		lua_pushliteral(L, "<...>"); /* another host's pid: only the file knows */
	} else if (dp_proc_comm(pid, buf, sizeof(buf))) {
		lua_pushstring(L, buf);
	} else {
		lua_pushliteral(L, "<...>");
	}
	lua_pushvalue(L, -1);
	lua_rawseti(L, commtab, pid);
}

static unsigned long long read_num(struct tep_format_field *f, void *data)
{
	unsigned long long v = 0;
	tep_read_number_field(f, data, &v);
	return v;
}

/* Where an array or __data_loc field's bytes are, bounded by the record. */
static void field_span(struct tep_format_field *f, void *data, int size, int *off, int *len)
{
	*off = f->offset;
	*len = f->size;
	if (f->flags & TEP_FIELD_IS_DYNAMIC) {
		unsigned int dl = (unsigned int)read_num(f, data);
		*off = (int)(dl & 0xffff);
		*len = (int)(dl >> 16);
		if (f->flags & TEP_FIELD_IS_RELATIVE)
			*off += f->offset + f->size;
	}
	if (*off < 0 || *len < 0 || *off + *len > size)
		*off = *len = 0;
}

/* The stack that follows a record on the same CPU. */
static void attach_stack(lua_State *L, struct dp_pipe *p, struct dp_raw *r, int refs,
			 int symtab, int cpu, void *data, int size)
{
	int ref = cpu < p->ncpu ? p->pending[cpu] : LUA_NOREF;
	long long n;
	if (ref == LUA_NOREF) {
		r->orphan_stacks++;
		return;
	}
	p->pending[cpu] = LUA_NOREF; /* its stack came: the record is complete */
	n = (long long)read_num(r->stack_size, data);
	if (n < 0 || r->stack_caller->offset + n * 8 > size)
		n = (size - r->stack_caller->offset) / 8;
	lua_rawgeti(L, refs, ref);
	lua_createtable(L, (int)n, 0);
	for (long long i = 0; i < n; i++) {
		unsigned long long a;
		memcpy(&a, (char *)data + r->stack_caller->offset + i * 8, 8);
		if (!a)
			break;
		push_symbol(L, r, symtab, a);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	dp_setkey(L, p->kidx, DP_K_STACK);
	lua_pop(L, 1);
}

void dp_raw_decode(lua_State *L, struct dp_pipe *p, struct dp_raw *r, int refs, int cache,
		   int cpu, void *data, int size, unsigned long long ts)
{
	struct tep_record rec;
	struct evinfo *ei;
	int id, symtab, commtab, pid;
	memset(&rec, 0, sizeof(rec));
	rec.data = data;
	rec.size = size;
	rec.ts = ts;
	rec.cpu = cpu;
	id = tep_data_type(r->tep, &rec);
	symtab = cache;
	commtab = cache + 1;
	if (id == r->stack_id && r->stack_caller) {
		attach_stack(L, p, r, refs, symtab, cpu, data, size);
		return;
	}
	ei = event_info(L, r, id);
	if (!ei) {
		r->unknown++;
		return;
	}
	lua_rawgeti(L, cache + 2, id); /* the event's cache */
	lua_createtable(L, 0, 9);
	lua_pushvalue(L, cache + 3);
	lua_setmetatable(L, -2);
	lua_rawgeti(L, -2, 1);
	dp_setkey(L, p->kidx, DP_K_NAME);
	lua_rawgeti(L, -2, 2);
	dp_setkey(L, p->kidx, DP_K_SYSTEM);
	pid = (int)read_num(r->common_pid, data);
	lua_pushinteger(L, pid);
	dp_setkey(L, p->kidx, DP_K_PID);
	push_comm(L, r, commtab, pid);
	dp_setkey(L, p->kidx, DP_K_COMM);
	lua_pushinteger(L, cpu);
	dp_setkey(L, p->kidx, DP_K_CPU);
	lua_pushnumber(L, (lua_Number)ts / 1e9);
	dp_setkey(L, p->kidx, DP_K_TS);
	push_flags(L, (unsigned)read_num(r->common_flags, data),
		   (unsigned)read_num(r->common_preempt, data));
	dp_setkey(L, p->kidx, DP_K_FLAGS);
	lua_createtable(L, 0, ei->nf + 1);
	for (int i = 0; i < ei->nf; i++) {
		struct fdesc *d = &ei->fd[i];
		unsigned long long v;
		lua_rawgeti(L, -3, d->name_idx); /* key */
		switch (d->kind) {
		case FK_STRING:
		case FK_BYTES: {
			int off, len;
			field_span(d->f, data, size, &off, &len);
			lua_pushlstring(L, (char *)data + off,
					d->kind == FK_STRING ? strnlen((char *)data + off, (size_t)len)
							     : (size_t)len);
			break;
		}
		case FK_ENUM:
			v = read_num(d->f, data);
			lua_rawgeti(L, -4, d->syms_idx);
			if (lua_rawgeti(L, -1, (lua_Integer)v) == LUA_TNIL) {
				lua_pop(L, 1);
				lua_pushinteger(L, (lua_Integer)v);
			}
			lua_remove(L, -2);
			break;
		case FK_SYMBOL:
			v = read_num(d->f, data);
			push_symbol(L, r, symtab, v);
			lua_rawset(L, -3);
			lua_rawgeti(L, -3, d->addr_idx);
			push_hex(L, v);
			break;
		case FK_SIGNED: {
			long long sv;
			v = read_num(d->f, data);
			switch (d->f->size) {
			case 1: sv = (int8_t)v; break;
			case 2: sv = (int16_t)v; break;
			case 4: sv = (int32_t)v; break;
			default: sv = (long long)v; break;
			}
			lua_pushinteger(L, (lua_Integer)sv);
			break;
		}
		case FK_UNSIGNED:
			v = read_num(d->f, data);
			if (v > (unsigned long long)LLONG_MAX)
				push_hex(L, v); /* as text mode gives it */
			else
				lua_pushinteger(L, (lua_Integer)v);
			break;
		case FK_POINTER:
			push_hex(L, read_num(d->f, data));
			break;
		}
		lua_rawset(L, -3);
	}
	dp_setkey(L, p->kidx, DP_K_FIELDS);
	dp_pipe_mark_lost(L, p, cpu);
	p->nread++;
	r->nread_cpu[cpu]++;
	{
		int ref = dp_pipe_push(L, p, refs, cpu);
		p->pending[cpu] = dp_pipe_holding(p) ? ref : LUA_NOREF;
	}
	lua_pop(L, 1); /* the event's cache */
}

/* Read one sub-buffer of cpu if it has none loaded. 1: loaded, 0: none, -1 error */
static int load_page(lua_State *L, struct dp_pipe *p, struct dp_raw *r, int cpu)
{
	ssize_t n;
	int missed;
	if (r->next[cpu])
		return 1;
	n = read(r->fds[cpu], r->page[cpu], (size_t)r->psize);
	if (n <= 0)
		return (n < 0 && errno != EAGAIN && errno != EINTR) ? -1 : 0;
	r->pages++;
	if (kbuffer_load_subbuffer(r->kb[cpu], r->page[cpu]) < 0)
		return 0;
	missed = kbuffer_missed_events(r->kb[cpu]);
	if (missed)
		dp_pipe_lost(L, p, cpu, missed);
	r->next[cpu] = kbuffer_read_event(r->kb[cpu], &r->next_ts[cpu]);
	return r->next[cpu] != NULL;
}

int dp_raw_fill(lua_State *L, struct dp_pipe *p, int refs, int ms)
{
	struct dp_raw *r = p->raw;
	int loaded = 0, cache;
	for (int pass = 0; pass < 2; pass++) {
		for (int c = 0; c < r->ncpu; c++)
			if (load_page(L, p, r, c) > 0)
				loaded++;
		if (loaded || pass)
			break;
		{
			struct pollfd pfd[256];
			int n = r->ncpu < 256 ? r->ncpu : 256, pr;
			for (int c = 0; c < n; c++) {
				pfd[c].fd = r->fds[c];
				pfd[c].events = POLLIN;
				pfd[c].revents = 0;
			}
			pr = poll(pfd, (nfds_t)n, ms);
			if (pr < 0 && errno == EINTR)
				return -1;
			/* a timeout still reads: poll wakes only at buffer_percent */
		}
	}
	if (!loaded)
		return 0;
	r->cmdlines_reloaded = 0;
	cache = dp_raw_push_cache(L, r);
	/* hand out what was read in timestamp order across CPUs */
	for (;;) {
		int best = -1;
		void *data;
		for (int c = 0; c < r->ncpu; c++)
			if (r->next[c] && (best < 0 || r->next_ts[c] < r->next_ts[best]))
				best = c;
		if (best < 0)
			break;
		data = r->next[best];
		dp_pipe_cpus(L, p, best);
		dp_raw_decode(L, p, r, refs, cache, best, data, kbuffer_event_size(r->kb[best]),
		       r->next_ts[best]);
		r->next[best] = kbuffer_next_event(r->kb[best], &r->next_ts[best]);
	}
	lua_pop(L, 4);
	return 1;
}

/* What decoding needs from a tep: the stack event and the common fields.
 * Returns NULL or what is missing. */
const char *dp_raw_init_tep(struct dp_raw *r)
{
	struct tep_event *kst;
	kst = tep_find_event_by_name(r->tep, "ftrace", "kernel_stack");
	r->stack_id = kst ? kst->id : -1;
	if (kst) {
		r->stack_size = tep_find_field(kst, "size");
		r->stack_caller = tep_find_field(kst, "caller");
	}
	{
		/* the common fields are the same for every event */
		struct tep_event *any = kst;
		if (!any) {
			struct tep_event **all = tep_list_events(r->tep, TEP_EVENT_SORT_ID);
			any = all ? all[0] : NULL;
		}
		if (!any) {
			return "no event formats found";
		}
		r->common_pid = tep_find_common_field(any, "common_pid");
		r->common_flags = tep_find_common_field(any, "common_flags");
		r->common_preempt = tep_find_common_field(any, "common_preempt_count");
		if (!r->common_pid || !r->common_flags || !r->common_preempt) {
			return "event formats lack the common fields";
		}
	}
	return NULL;
}

/* Start raw reading on p's instance; opts is the option table index. */
int dp_raw_start(lua_State *L, struct dp_pipe *p, int opts)
{
	struct dp_raw *r = calloc(1, sizeof(*r));
	const char *systems[64];
	int ns = 0;
	lua_Integer pct = dp_opt_integer(L, opts, "buffer_percent", -1);
	char msg[512];
	int fail_errno = 0;
	const char *fail = NULL;

	if (!r) {
		p->closed = 1;
		return luaL_error(L, "out of memory");
	}
	p->raw = r;
	r->cache_ref = LUA_NOREF;
	/* systems of the events this instance uses, and ftrace for stacks */
	if (lua_getfield(L, opts, "systems") == LUA_TTABLE) {
		for (int i = 1; ns < 62; i++) {
			if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
				lua_pop(L, 1);
				break;
			}
			systems[ns++] = lua_tostring(L, -1); /* anchored in the table */
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	systems[ns++] = "ftrace";
	systems[ns] = NULL;
	r->tep = tracefs_local_events_system(dp_custom_dir ? tracefs_tracing_dir() : NULL,
					     systems);
	if (!r->tep) {
		fail = "cannot load the event formats (events/header_page, formats)";
		fail_errno = errno;
		goto error;
	}
	tracefs_load_cmdlines(dp_custom_dir ? tracefs_tracing_dir() : NULL, r->tep);
	r->psize = tep_get_sub_buffer_size(r->tep);
	{
		/* a per-instance sub-buffer size overrides header_page's */
		long long kb = 0;
		if (tracefs_instance_file_read_number(p->inst->ti, "buffer_subbuf_size_kb", &kb) == 0 &&
		    kb > 0 && kb * 1024 > r->psize)
			r->psize = (int)(kb * 1024);
	}
	if (r->psize <= 0)
		r->psize = getpagesize();
	fail = dp_raw_init_tep(r);
	if (fail)
		goto error;
	r->ncpu = tep_get_cpus(r->tep);
	if (r->ncpu <= 0)
		r->ncpu = (int)sysconf(_SC_NPROCESSORS_CONF);
	r->fds = malloc(sizeof(int) * (size_t)r->ncpu);
	r->kb = calloc((size_t)r->ncpu, sizeof(*r->kb));
	r->page = calloc((size_t)r->ncpu, sizeof(void *));
	r->next = calloc((size_t)r->ncpu, sizeof(void *));
	r->next_ts = calloc((size_t)r->ncpu, sizeof(unsigned long long));
	r->nread_cpu = calloc((size_t)r->ncpu, sizeof(long long));
	if (!r->fds || !r->kb || !r->page || !r->next || !r->next_ts ||
	    !r->nread_cpu) {
		fail = "out of memory";
		goto error;
	}
	for (int c = 0; c < r->ncpu; c++)
		r->fds[c] = -1;
	for (int c = 0; c < r->ncpu; c++) {
		char file[64];
		snprintf(file, sizeof(file), "per_cpu/cpu%d/trace_pipe_raw", c);
		r->fds[c] = tracefs_instance_file_open(p->inst->ti, file, O_RDONLY | O_NONBLOCK);
		if (r->fds[c] < 0) {
			if (!tracefs_file_exists(p->inst->ti, file))
				continue; /* an offline CPU */
			fail = "cannot open per_cpu trace_pipe_raw";
			fail_errno = errno;
			goto error;
		}
		r->kb[c] = kbuffer_alloc(tep_get_header_page_size(r->tep) == 4 ? KBUFFER_LSIZE_4
										 : KBUFFER_LSIZE_8,
					 tep_is_file_bigendian(r->tep) ? KBUFFER_ENDIAN_BIG
								      : KBUFFER_ENDIAN_LITTLE);
		r->page[c] = malloc((size_t)r->psize);
		if (!r->kb[c] || !r->page[c]) {
			fail = "out of memory";
			goto error;
		}
	}
	/* offline CPUs: keep arrays dense by giving them a closed fd slot */
	for (int c = 0; c < r->ncpu; c++)
		if (r->fds[c] < 0) {
			r->fds[c] = open("/dev/null", O_RDONLY | O_CLOEXEC);
			r->kb[c] = kbuffer_alloc(KBUFFER_LSIZE_8, KBUFFER_ENDIAN_LITTLE);
			r->page[c] = malloc((size_t)r->psize);
		}
	if (pct >= 0) {
		char v[16];
		snprintf(v, sizeof(v), "%d", (int)pct);
		if (tracefs_instance_file_write(p->inst->ti, "buffer_percent", v) < 0) {
			fail = "cannot set buffer_percent";
			fail_errno = errno;
			goto error;
		}
	}
	dp_raw_new_cache(L, r);
	if (lua_getfield(L, opts, "symbols") == LUA_TTABLE) {
		dp_raw_cache(L, r);
		lua_insert(L, -2);
		lua_setfield(L, -2, "over");
	}
	lua_pop(L, 1);
	dp_pipe_cpus(L, p, r->ncpu - 1);
	return 0;
error:
	snprintf(msg, sizeof(msg), "raw mode: %s%s%s", fail, fail_errno ? ": " : "",
		 fail_errno ? strerror(fail_errno) : "");
	dp_raw_free(r);
	p->raw = NULL;
	p->closed = 1;
	lua_pushstring(L, msg);
	return lua_error(L);
}

int dp_raw_stats(lua_State *L, struct dp_pipe *p)
{
	struct dp_raw *r = p->raw;
	lua_createtable(L, 0, 8);
	lua_pushinteger(L, p->nread);
	lua_setfield(L, -2, "read");
	lua_pushinteger(L, p->lost);
	lua_setfield(L, -2, "lost_marked");
	lua_pushstring(L, p->mode == DP_MODE_DAT ? "trace.dat" : "raw");
	lua_setfield(L, -2, "mode");
	if (!r)
		return 1;
	lua_pushinteger(L, r->orphan_stacks);
	lua_setfield(L, -2, "orphan_stacks");
	lua_pushinteger(L, r->unknown);
	lua_setfield(L, -2, "unknown_events");
	lua_pushinteger(L, r->pages);
	lua_setfield(L, -2, "pages");
	lua_newtable(L);
	for (int c = 0; c < r->ncpu && c < p->ncpu; c++) {
		lua_pushinteger(L, p->lost_cpu[c]);
		lua_rawseti(L, -2, c);
	}
	lua_setfield(L, -2, "lost_cpu");
	lua_newtable(L);
	for (int c = 0; c < r->ncpu; c++) {
		lua_pushinteger(L, r->nread_cpu[c]);
		lua_rawseti(L, -2, c);
	}
	lua_setfield(L, -2, "read_cpu");
	return 1;
}

void dp_raw_open(lua_State *L)
{
	dp_dat_open(L);
}
