/*
 * textdec.c - text lines into records (see textdec.h).
 */
#include "textdec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event-parse.h>

#include "format.h"
#include "ksym.h"
#include "parse.h"
#include "record.h"

#define TEXT_BUF 65536
#define FORMAT_MAX (256 * 1024)

/* What the decoder knows of one event (a userdata in own.ev[name]; its
 * uservalue holds [i] = the field conversion i prints, system, labels =
 * { printed label = field }, syms) */
struct tev {
	int n; /* conversions of the print format, or -1: no template */
	struct dp_span lit[DP_CONV_MAX];
	struct dp_span tail;
	unsigned char hex[DP_CONV_MAX];
	unsigned char named[DP_CONV_MAX];
	unsigned char code[DP_CONV_MAX]; /* a code address printed as a bare %p */
	int has_syms;
};

int dp_textdec_init(struct dp_textdec *t, const char *formats_dir, int live)
{
	memset(t, 0, sizeof(*t));
	t->live = live;
	t->cap = TEXT_BUF;
	t->buf = malloc(t->cap);
	if (formats_dir)
		t->formats_dir = strdup(formats_dir);
	if (!t->buf || (formats_dir && !t->formats_dir))
		return -1;
	return 0;
}

void dp_textdec_free(struct dp_textdec *t)
{
	free(t->buf);
	free(t->formats_dir);
	if (t->tep)
		tep_free(t->tep);
	dp_misses_free(&t->misses);
	memset(t, 0, sizeof(*t));
}

char *dp_textdec_space(struct dp_textdec *t, size_t *n)
{
	*n = t->cap - t->len;
	return t->buf + t->len;
}

void dp_textdec_add(struct dp_textdec *t, size_t n)
{
	t->len += n;
}

void dp_textdec_stats(lua_State *L, struct dp_textdec *t)
{
	lua_pushinteger(L, t->bad_lines);
	lua_setfield(L, -2, "bad_lines");
}

/* The format of sys:name from the formats directory (once per event). */
static struct tep_event *load_format(struct dp_textdec *t, const char *sys, const char *name)
{
	char path[4096], *buf;
	struct tep_event *ev = NULL;
	ssize_t n;
	size_t len = 0;
	int fd;
	if (!t->formats_dir || !dp_name_ok(sys, strlen(sys), 64) ||
	    !dp_name_ok(name, strlen(name), 128))
		return NULL;
	if (!t->tep && !(t->tep = tep_alloc()))
		return NULL;
	ev = tep_find_event_by_name(t->tep, sys, name);
	if (ev)
		return ev;
	snprintf(path, sizeof(path), "%s/events/%s/%s/format", t->formats_dir, sys, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	buf = malloc(FORMAT_MAX);
	if (buf) {
		while (len < FORMAT_MAX && (n = read(fd, buf + len, FORMAT_MAX - len)) > 0)
			len += (size_t)n;
		if (tep_parse_event(t->tep, buf, len, sys) == 0)
			ev = tep_find_event_by_name(t->tep, sys, name);
		free(buf);
	}
	close(fd);
	return ev;
}

/* The label a literal ends with: " src=" -> "src", " reason: " -> "reason". */
static int lit_label(struct dp_span lit, struct dp_span *label)
{
	size_t e = lit.n, b;
	while (e && lit.p[e - 1] == ' ')
		e--;
	if (!e || (lit.p[e - 1] != '=' && lit.p[e - 1] != ':'))
		return 0;
	e--;
	b = e;
	while (b && lit.p[b - 1] != ' ' && lit.p[b - 1] != ',' && lit.p[b - 1] != '(')
		b--;
	if (b == e)
		return 0;
	label->p = lit.p + b;
	label->n = e - b;
	return 1;
}

/* Make the entry of an event (name at nameidx), leave it on top. */
static void make_entry(lua_State *L, struct dp_textdec *t, struct dp_fill *f, int evtab,
		       int names, int syms, int nameidx, int fn_line)
{
	struct tev *e = lua_newuserdatauv(L, sizeof(*e), 1);
	struct tep_event *ev = NULL;
	const char *sys = NULL;
	(void)f;
	memset(e, 0, sizeof(*e));
	e->n = -1;
	lua_createtable(L, 4, 3);
	if (fn_line) {
		lua_pushliteral(L, "ftrace");
	} else if (names) {
		lua_pushvalue(L, nameidx);
		lua_rawget(L, names);
	} else {
		lua_pushnil(L);
	}
	if (lua_type(L, -1) == LUA_TSTRING)
		sys = lua_tostring(L, -1); /* anchored in uv below */
	lua_pushvalue(L, -1);
	lua_rawseti(L, -3, -1); /* [-1] = system, [0] = name: by index per record */
	lua_pop(L, 1);
	lua_pushvalue(L, nameidx);
	lua_rawseti(L, -2, 0);
	if (sys && !fn_line)
		ev = load_format(t, sys, lua_tostring(L, nameidx));
	lua_newtable(L); /* labels */
	if (ev) {
		struct dp_conv cv[DP_CONV_MAX];
		const char *tail;
		size_t tail_len;
		int n = dp_print_convs(ev, cv, DP_CONV_MAX, &tail, &tail_len);
		for (int i = 0; i < n; i++) {
			struct dp_span label;
			char last = cv[i].spec[cv[i].spec_len - 1];
			e->lit[i].p = cv[i].lit;
			e->lit[i].n = cv[i].lit_len;
			e->hex[i] = last == 'x' || last == 'X';
			e->named[i] = cv[i].field != NULL;
			/* skb:kfree_skb's location before 6.2 (the rule of raw
			 * mode's is_code_address): named where the kernel printed
			 * the real address (5.10), kept where it printed a hash */
			e->code[i] = cv[i].field && strcmp(cv[i].field, "location") == 0 &&
				     cv[i].spec_len >= 2 && cv[i].spec[cv[i].spec_len - 2] == '%' &&
				     last == 'p';
			if (cv[i].field) {
				lua_pushstring(L, cv[i].field);
				lua_rawseti(L, -3, i + 1);
				if (lit_label(e->lit[i], &label)) {
					lua_pushlstring(L, label.p, label.n);
					lua_pushstring(L, cv[i].field);
					lua_rawset(L, -3);
				}
			}
		}
		if (n > 0) {
			e->n = n;
			e->tail.p = tail;
			e->tail.n = tail_len;
		}
	}
	lua_setfield(L, -2, "labels");
	if (syms) {
		lua_pushvalue(L, nameidx);
		e->has_syms = lua_rawget(L, syms) == LUA_TTABLE;
		lua_setfield(L, -2, "syms");
	}
	lua_setiuservalue(L, -2, 1);
	lua_pushvalue(L, nameidx);
	lua_pushvalue(L, -2);
	lua_rawset(L, evtab);
}

/* A printed value as raw records give it: an integer where it fits, an
 * address or unsigned number beyond it as 16 hex digits; %x values are hex. */
static void push_value(lua_State *L, struct dp_span v, int hex)
{
	long long i;
	unsigned long long u;
	char h[16];
	if (hex && dp_span_hex(v, &u)) {
		if (u > (unsigned long long)LLONG_MAX) {
			dp_hex16(h, u);
			lua_pushlstring(L, h, 16);
		} else {
			lua_pushinteger(L, (lua_Integer)u);
		}
		return;
	}
	switch (dp_span_number(v, &i, &u)) {
	case DP_NUM_INT:
		lua_pushinteger(L, (lua_Integer)i);
		break;
	case DP_NUM_WIDE:
		dp_hex16(h, u);
		lua_pushlstring(L, h, 16);
		break;
	default:
		lua_pushlstring(L, v.p, v.n);
	}
}

/* A code address printed as a bare %p, by name as raw mode gives it
 * ("tcp_v4_rcv+0x62/0xe90"), from this kernel's kallsyms (live pipes
 * only: a saved text may come from another kernel). A kernel that hashes
 * %p prints no address kallsyms can name: 0, and the value stays. */
static int push_code(lua_State *L, struct dp_textdec *t, struct dp_span v)
{
	unsigned long long a;
	char buf[512];
	if (!t->live || !t->tep || !dp_span_hex(v, &a) || a < 0xffff800000000000ULL)
		return 0;
	if (!t->kallsyms) {
		t->kallsyms = dp_ksym_load(t->tep) == 0 ? 1 : -1;
	}
	if (t->kallsyms < 0 || !dp_ksym_format(t->tep, a, 1, buf, sizeof(buf)))
		return 0;
	lua_pushstring(L, buf);
	return 1;
}

/* fields[f] = syms[f][fields[f]] where a table names the number (a
 * kprobe's reason named like the tracepoint's); fields on top, uv under */
static void name_fields(lua_State *L, int uv)
{
	if (lua_getfield(L, uv, "syms") != LUA_TTABLE) {
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

/* working stack slots during a feed; cur holds the uservalue of the last
 * record's event, whose name is in last (records of one event in a row
 * skip the lookup) */
struct slots {
	int evtab, names, syms, stack, meta, cur;
	struct tev *last_e;
	char last[64];
	size_t last_len;
};

static void event_line(lua_State *L, struct dp_textdec *t, struct dp_fill *f, struct slots *s,
		       struct dp_line *ln, int hold)
{
	struct tev *e;
	int nameidx, uv, ref;
	if (s->last_len && ln->name.n == s->last_len && memcmp(ln->name.p, s->last, s->last_len) == 0 &&
	    !ln->fn_ip.n) {
		e = s->last_e; /* the same event as the record before */
		uv = s->cur;
		nameidx = lua_gettop(L) + 1;
		lua_rawgeti(L, uv, 0);
	} else {
		lua_pushlstring(L, ln->name.p, ln->name.n);
		nameidx = lua_gettop(L);
		lua_pushvalue(L, nameidx);
		if (lua_rawget(L, s->evtab) == LUA_TNIL) {
			lua_pop(L, 1);
			make_entry(L, t, f, s->evtab, s->names, s->syms, nameidx, ln->fn_ip.n != 0);
		}
		e = lua_touserdata(L, -1);
		lua_getiuservalue(L, -1, 1);
		lua_replace(L, s->cur);
		lua_pop(L, 1);
		uv = s->cur;
		s->last_len = 0;
		if (ln->name.n < sizeof(s->last) && !ln->fn_ip.n) {
			memcpy(s->last, ln->name.p, ln->name.n);
			s->last_len = ln->name.n;
			s->last_e = e;
		}
	}
	lua_createtable(L, 0, 10);
	lua_pushvalue(L, s->meta);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, nameidx);
	dp_setkey(L, f->keys, DP_K_NAME);
	if (lua_rawgeti(L, uv, -1) == LUA_TSTRING)
		dp_setkey(L, f->keys, DP_K_SYSTEM);
	else
		lua_pop(L, 1);
	lua_pushlstring(L, ln->comm.p, ln->comm.n);
	dp_setkey(L, f->keys, DP_K_COMM);
	lua_pushinteger(L, ln->pid);
	dp_setkey(L, f->keys, DP_K_PID);
	lua_pushinteger(L, ln->cpu);
	dp_setkey(L, f->keys, DP_K_CPU);
	lua_pushnumber(L, (lua_Number)ln->ts_ns / 1e9);
	dp_setkey(L, f->keys, DP_K_TS);
	lua_pushlstring(L, ln->flags.p, ln->flags.n);
	dp_setkey(L, f->keys, DP_K_FLAGS);
	lua_pushlstring(L, ln->payload.p, ln->payload.n);
	dp_setkey(L, f->keys, DP_K_PAYLOAD);
	lua_createtable(L, 0, 6);
	{
		struct dp_span vals[DP_CONV_MAX];
		if (e->n > 0 && dp_template_match(ln->payload, e->lit, e->n, e->tail, vals)) {
			for (int i = 0; i < e->n; i++) {
				if (!e->named[i])
					continue;
				lua_rawgeti(L, uv, i + 1);
				if (!e->code[i] || !push_code(L, t, vals[i]))
					push_value(L, vals[i], e->hex[i]);
				lua_rawset(L, -3);
			}
		} else {
			struct dp_span key, val;
			size_t pos = 0;
			lua_getfield(L, uv, "labels");
			while (dp_payload_next(ln->payload, &pos, &key, &val)) {
				lua_pushlstring(L, key.p, key.n);
				lua_pushvalue(L, -1);
				if (lua_rawget(L, -3) == LUA_TSTRING)
					lua_remove(L, -2); /* the field the label prints */
				else
					lua_pop(L, 1);
				push_value(L, val, 0);
				lua_rawset(L, -4);
			}
			lua_pop(L, 1);
		}
	}
	if (ln->fn_ip.n) { /* the function tracer: ftrace:function's fields */
		lua_pushlstring(L, ln->fn_ip.p, ln->fn_ip.n);
		lua_setfield(L, -2, "ip");
		lua_pushlstring(L, ln->fn_parent.p, ln->fn_parent.n);
		lua_setfield(L, -2, "parent_ip");
	}
	if (e->has_syms)
		name_fields(L, uv);
	dp_setkey(L, f->keys, DP_K_FIELDS);
	ref = dp_join_record(L, f->join, f->refs, f->keys, ln->cpu, hold);
	if (t->live && ln->pid > 0 && ln->comm.n == 5 && memcmp(ln->comm.p, "<...>", 5) == 0)
		dp_misses_add(L, &t->misses, ref, (int)ln->pid); /* no cmdline saved yet */
	lua_settop(L, nameidx - 1);
}

static void text_line(lua_State *L, struct dp_textdec *t, struct dp_fill *f, struct slots *s,
		      const char *p, size_t n, int hold)
{
	struct dp_line ln;
	enum dp_line_kind k = dp_parse_line(p, n, &ln);
	if (k != DP_LINE_FRAME && t->collecting) {
		t->collecting = 0;
		dp_join_stack_done(L, f->join, f->refs, f->keys);
	}
	switch (k) {
	case DP_LINE_EMPTY:
	case DP_LINE_COMMENT:
	case DP_LINE_USTACK:
		return;
	case DP_LINE_BAD:
		t->bad_lines++;
		return;
	case DP_LINE_LOST:
		dp_join_lost(L, f->join, ln.cpu, ln.lost);
		return;
	case DP_LINE_FRAME:
		if (t->collecting) { /* else frames of a stack that belongs to no record */
			lua_pushlstring(L, ln.frame.p, ln.frame.n);
			lua_rawseti(L, s->stack, ++t->stack_n);
		}
		return;
	case DP_LINE_STACK:
		lua_createtable(L, 24, 0);
		lua_pushvalue(L, -1);
		lua_replace(L, s->stack); /* kept at hand while its frames arrive */
		t->stack_n = 0;
		t->collecting = dp_join_stack(L, f->join, f->refs, f->keys, ln.cpu, 1);
		return;
	case DP_LINE_EVENT:
		event_line(L, t, f, s, &ln, hold);
		return;
	}
}

static int own_table(lua_State *L, int own, const char *name, int create)
{
	if (lua_getfield(L, own, name) == LUA_TTABLE)
		return lua_gettop(L);
	lua_pop(L, 1);
	if (!create) {
		lua_pushnil(L);
		return 0;
	}
	lua_newtable(L);
	lua_pushvalue(L, -1);
	lua_setfield(L, own, name);
	return lua_gettop(L);
}

void dp_textdec_feed(lua_State *L, struct dp_textdec *t, struct dp_fill *f, int hold,
		     int how)
{
	int final = how & DP_TEXT_FINAL;
	struct slots s;
	size_t start = 0;
	int top = lua_gettop(L);
	s.evtab = own_table(L, f->own, "ev", 1);
	s.names = own_table(L, f->own, "names", 0);
	s.syms = own_table(L, f->own, "syms", 0);
	lua_getfield(L, f->own, "stack"); /* a stack whose frames may go on */
	s.stack = lua_gettop(L);
	lua_rawgeti(L, f->keys, 0);
	s.meta = lua_gettop(L);
	lua_pushnil(L);
	s.cur = lua_gettop(L);
	s.last_len = 0;
	s.last_e = NULL;
	for (size_t i = 0; i < t->len; i++) {
		if (t->buf[i] == '\n') {
			text_line(L, t, f, &s, t->buf + start, i - start, hold);
			start = i + 1;
		}
	}
	if (final && start < t->len) {
		text_line(L, t, f, &s, t->buf + start, t->len - start, hold);
		start = t->len;
	}
	if (start) {
		memmove(t->buf, t->buf + start, t->len - start);
		t->len -= start;
	}
	if (t->len == t->cap) { /* a line longer than the buffer is no trace line */
		t->bad_lines++;
		t->len = 0;
	}
	if ((how & (DP_TEXT_ENTRIES | DP_TEXT_FINAL)) && t->collecting) {
		/* trace_pipe reads end on entry boundaries; a file at its end */
		t->collecting = 0;
		dp_join_stack_done(L, f->join, f->refs, f->keys);
	}
	if (t->collecting)
		lua_pushvalue(L, s.stack);
	else
		lua_pushnil(L);
	lua_setfield(L, f->own, "stack");
	if (t->misses.n) {
		int comms = own_table(L, f->own, "comm", 1);
		dp_misses_fix(L, &t->misses, NULL, f->refs, f->keys, comms);
	}
	lua_settop(L, top);
}
