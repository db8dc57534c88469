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

/* what one read may add: a feed makes the records of at most this much
 * text (about 50 drops), which the reader takes while they are still in
 * the CPU's cache, and fewer of them outlive a young collection (64 KB at
 * once: about 10% slower offline). A longer line still grows to DP_LINES_BUF
 * over several reads. Saved files only: a live trace_pipe read shorter
 * than what the kernel has may end inside an entry. */
#define TEXT_READ 8192
#define FORMAT_MAX (256 * 1024)

#define VALUE_MAX 40

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
	int eager; /* fields decoded with the record (a live pipe names code addresses) */
	/* the text each conversion printed last (vlen 255: none), whose value
	 * is kept in the uservalue at [n + 1 + i]: a value printed again (a
	 * reason, a location) is not converted nor interned anew */
	unsigned char vlen[DP_CONV_MAX];
	signed char vscore[DP_CONV_MAX]; /* hits less misses: below -16, not kept (an address) */
	char vtext[DP_CONV_MAX][VALUE_MAX];
	/* then the literal text of lit[] and tail */
};

int dp_textdec_init(struct dp_textdec *t, const char *formats_dir, int live)
{
	memset(t, 0, sizeof(*t));
	t->live = live;
	/* a live trace_pipe read ends on an entry only when it may take
	 * what the kernel has (a page or two): no cap there */
	if (dp_lines_init(&t->lines, DP_LINES_BUF, live ? 0 : TEXT_READ) < 0)
		return -1;
	if (formats_dir)
		t->formats_dir = strdup(formats_dir);
	if (formats_dir && !t->formats_dir)
		return -1;
	return 0;
}

void dp_textdec_free(struct dp_textdec *t)
{
	dp_lines_free(&t->lines);
	free(t->frames);
	free(t->formats_dir);
	dp_ksyms_free(&t->syms); /* the tep's resolver: before the tep */
	if (t->tep)
		tep_free(t->tep);
	dp_misses_free(&t->misses);
	memset(t, 0, sizeof(*t));
}

ssize_t dp_textdec_read(struct dp_textdec *t, int fd)
{
	return dp_lines_read(&t->lines, fd);
}

void dp_textdec_stats(lua_State *L, struct dp_textdec *t)
{
	lua_pushinteger(L, t->bad_lines + t->lines.overlong);
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

/* Make the entry of an event (name at nameidx), leave it on top. The
 * literal text of its template is copied into the entry (after the
 * struct): a record decodes its fields when first read, maybe after the
 * decoder and its formats are gone. */
static void make_entry(lua_State *L, struct dp_textdec *t, int evtab, int names, int syms,
		       int nameidx, int fn_line)
{
	struct dp_conv cv[DP_CONV_MAX];
	struct tev *e;
	struct tep_event *ev = NULL;
	const char *sys = NULL, *tail = NULL;
	size_t tail_len = 0, extra = 0;
	char *store;
	int n = 0, sysidx;
	if (fn_line) {
		lua_pushliteral(L, "ftrace");
	} else if (names) {
		lua_pushvalue(L, nameidx);
		lua_rawget(L, names);
	} else {
		lua_pushnil(L);
	}
	sysidx = lua_gettop(L);
	if (lua_type(L, sysidx) == LUA_TSTRING)
		sys = lua_tostring(L, sysidx);
	if (sys && !fn_line)
		ev = load_format(t, sys, lua_tostring(L, nameidx));
	if (ev)
		n = dp_print_convs(ev, cv, DP_CONV_MAX, &tail, &tail_len);
	for (int i = 0; i < n; i++)
		extra += cv[i].lit_len;
	if (n > 0)
		extra += tail_len;
	e = lua_newuserdatauv(L, sizeof(*e) + extra, 1);
	memset(e, 0, sizeof(*e));
	memset(e->vlen, 255, sizeof(e->vlen));
	store = (char *)(e + 1);
	e->n = -1;
	lua_createtable(L, n > 0 ? 2 * n : 0, 3);
	lua_pushvalue(L, sysidx);
	lua_rawseti(L, -2, -1); /* [-1] = system, [0] = name: by index per record */
	lua_pushvalue(L, nameidx);
	lua_rawseti(L, -2, 0);
	lua_newtable(L); /* labels */
	for (int i = 0; i < n; i++) {
		struct dp_span label;
		char last = cv[i].spec[cv[i].spec_len - 1];
		memcpy(store, cv[i].lit, cv[i].lit_len);
		e->lit[i].p = store;
		e->lit[i].n = cv[i].lit_len;
		store += cv[i].lit_len;
		e->hex[i] = last == 'x' || last == 'X';
		e->named[i] = cv[i].field != NULL;
		/* skb:kfree_skb's location before 6.2 (the rule of raw
		 * mode's is_code_address): named where the kernel printed
		 * the real address (5.10), kept where it printed a hash */
		e->code[i] = cv[i].field && strcmp(cv[i].field, "location") == 0 &&
			     cv[i].spec_len >= 2 && cv[i].spec[cv[i].spec_len - 2] == '%' &&
			     last == 'p';
		if (e->code[i] && t->live)
			e->eager = 1; /* named from this kernel's kallsyms, by the decoder */
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
		memcpy(store, tail, tail_len);
		e->tail.p = store;
		e->tail.n = tail_len;
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
	lua_remove(L, sysidx);
}

/* A printed value as raw records give it: an integer where it fits, an
 * address or unsigned number beyond it as 16 hex digits; %x values are hex. */
static void push_value(lua_State *L, struct dp_span v, int hex)
{
	long long i;
	unsigned long long u;
	char h[16];
	if (!hex && v.n == 16) {
		/* 16 lowercase hex digits, a letter or a leading 0 among them:
		 * an address, which dp_hex16 would print back as it is */
		int letter = v.p[0] == '0', ok = 1;
		for (size_t k = 0; k < 16 && ok; k++) {
			char c = v.p[k];
			if (c >= 'a' && c <= 'f')
				letter = 1;
			else if (c < '0' || c > '9')
				ok = 0;
		}
		if (ok && letter) {
			lua_pushlstring(L, v.p, 16);
			return;
		}
	}
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
	if (!t || !t->live || !t->tep || !dp_span_hex(v, &a) || a < 0xffff800000000000ULL)
		return 0;
	if (!t->syms.tep)
		dp_ksyms_init(&t->syms, t->tep, 1);
	if (!dp_ksym_format(&t->syms, a, 1, buf, sizeof(buf)))
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

/* Push the fields table of a payload printed by the event of entry e (its
 * uservalue at uv): the values matched against the event's print format,
 * else the payload's "label=value" pairs. t: the decoder, for code
 * addresses (a live pipe), or NULL (a record decoding its own fields). */
static void push_fields(lua_State *L, struct dp_textdec *t, struct tev *e, int uv,
			struct dp_span payload)
{
	struct dp_span vals[DP_CONV_MAX];
	lua_createtable(L, 0, 6);
	if (e->n > 0 && dp_template_match(payload, e->lit, e->n, e->tail, vals)) {
		for (int i = 0; i < e->n; i++) {
			if (!e->named[i])
				continue;
			lua_rawgeti(L, uv, i + 1);
			if (e->vscore[i] >= -16 && e->vlen[i] == vals[i].n &&
			    memcmp(e->vtext[i], vals[i].p, vals[i].n) == 0) {
				lua_rawgeti(L, uv, e->n + 1 + i); /* as the record before */
				if (e->vscore[i] < 64)
					e->vscore[i]++;
			} else {
				if (!e->code[i] || !push_code(L, t, vals[i]))
					push_value(L, vals[i], e->hex[i]);
				if (e->vscore[i] >= -16 && vals[i].n < VALUE_MAX) {
					e->vscore[i]--;
					e->vlen[i] = (unsigned char)vals[i].n;
					memcpy(e->vtext[i], vals[i].p, vals[i].n);
					lua_pushvalue(L, -1);
					lua_rawseti(L, uv, e->n + 1 + i);
				}
			}
			lua_rawset(L, -3);
		}
	} else {
		struct dp_span key, val;
		size_t pos = 0;
		lua_getfield(L, uv, "labels");
		while (dp_payload_next(payload, &pos, &key, &val)) {
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
	if (e->has_syms)
		name_fields(L, uv);
}

/* upvalues of a text record's __index and __pairs */
#define UP_EVTAB lua_upvalueindex(1) /* own.ev: event name -> entry */
#define UP_FIELDS lua_upvalueindex(2) /* the key "fields" */
#define UP_NAME lua_upvalueindex(3)   /* the key "name" */
#define UP_PAYLOAD lua_upvalueindex(4) /* the key "payload" */
#define UP_STACK lua_upvalueindex(5)  /* the key "stack" */
/* where a text record's stack waits until rec.stack is first read: a
 * table of weak keys (the records), each value "t" (trim) or "r"
 * (raw_stacks) and the frames, one a line; outside the record, so that
 * next() and a serializer see only the record's own keys */
#define UP_FRAMES lua_upvalueindex(6)
/* the event name a record decoded last, and its entry: records of one
 * event in a row skip the lookup in own.ev */
#define UP_LASTNAME lua_upvalueindex(7)
#define UP_LASTENTRY lua_upvalueindex(8)
/* the frames text of the stack made last, and, once a stack came twice in
 * a row, a private copy of its table: a storm's drops share their stack,
 * and its frames are then copied, not interned again */
#define UP_LASTTEXT lua_upvalueindex(9)
#define UP_LASTSTACK lua_upvalueindex(10)
#define NUP 10

/* Push a new table of the n first items of the array at idx. */
static void copy_array(lua_State *L, int idx, lua_Integer n)
{
	idx = lua_absindex(L, idx);
	lua_createtable(L, (int)n, 0);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, i);
		lua_rawseti(L, -2, i);
	}
}

/* The frame after the '\n' at *b of the frames text p (n bytes): where it
 * starts, its length in *len; *b moves on to the '\n' after it (or n). */
static const char *next_frame(const char *p, size_t n, size_t *b, size_t *len)
{
	const char *f = p + *b + 1;
	const char *nl = memchr(f, '\n', n - *b - 1);
	size_t e = nl ? (size_t)(nl - p) : n;
	*len = e - *b - 1;
	*b = e;
	return f;
}

/* rec.stack of the text record at 1 made from its frames and set (pushed),
 * or nil; a stack the user set first stays */
static int make_stack(lua_State *L)
{
	size_t n, b = 1;
	const char *p;
	int k = 0, again;
	lua_pushvalue(L, 1);
	if (lua_rawget(L, UP_FRAMES) != LUA_TSTRING)
		return 0;
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	lua_rawset(L, UP_FRAMES);
	lua_pushvalue(L, UP_STACK);
	if (lua_rawget(L, 1) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	p = lua_tolstring(L, -1, &n);
	again = lua_rawequal(L, -1, UP_LASTTEXT);
	if (again && lua_istable(L, UP_LASTSTACK)) {
		copy_array(L, UP_LASTSTACK, (lua_Integer)lua_rawlen(L, UP_LASTSTACK));
		goto set;
	}
	lua_createtable(L, 24, 0);
	if (p[0] == 't') { /* trimmed: the frames the rule leaves out are not made */
		const char *f[DP_SKIP_MAX];
		size_t fn[DP_SKIP_MAX];
		int count = 0;
		while (b < n && count < DP_SKIP_MAX) {
			f[count] = next_frame(p, n, &b, &fn[count]);
			count++;
		}
		for (int i = dp_frames_skip(f, fn, count); i < count; i++) {
			lua_pushlstring(L, f[i], fn[i]);
			lua_rawseti(L, -2, ++k);
		}
	}
	while (b < n) {
		size_t len;
		const char *f = next_frame(p, n, &b, &len);
		lua_pushlstring(L, f, len);
		lua_rawseti(L, -2, ++k);
	}
	if (again) { /* the second time in a row: kept for the next ones */
		copy_array(L, -1, k);
		lua_replace(L, UP_LASTSTACK);
	} else {
		lua_pushvalue(L, -2);
		lua_replace(L, UP_LASTTEXT);
		lua_pushnil(L);
		lua_replace(L, UP_LASTSTACK);
	}
set:
	lua_pushvalue(L, UP_STACK);
	lua_pushvalue(L, -2);
	lua_rawset(L, 1);
	return 1;
}

/* rec.fields of the text record at 1 decoded from its payload and set
 * (pushed), or nil */
static int decode_fields(lua_State *L)
{
	struct tev *e;
	size_t n;
	const char *p;
	lua_pushvalue(L, UP_NAME);
	if (lua_rawget(L, 1) != LUA_TSTRING)
		return 0;
	if (lua_rawequal(L, -1, UP_LASTNAME)) {
		lua_pop(L, 1);
		lua_pushvalue(L, UP_LASTENTRY);
	} else {
		lua_pushvalue(L, -1);
		if (lua_rawget(L, UP_EVTAB) != LUA_TUSERDATA)
			return 0;
		lua_copy(L, -2, UP_LASTNAME);
		lua_copy(L, -1, UP_LASTENTRY);
	}
	e = lua_touserdata(L, -1);
	lua_getiuservalue(L, -1, 1);
	lua_pushvalue(L, UP_PAYLOAD);
	if (lua_rawget(L, 1) != LUA_TSTRING)
		return 0;
	p = lua_tolstring(L, -1, &n);
	push_fields(L, NULL, e, lua_gettop(L) - 1, (struct dp_span){p, n});
	lua_pushvalue(L, UP_FIELDS);
	lua_pushvalue(L, -2);
	lua_rawset(L, 1);
	return 1;
}

/* A text record's __index: its fields, decoded when first read (the
 * record keeps its payload, and the event's template is kept for it). */
static int text_record_index(lua_State *L)
{
	if (!lua_istable(L, 1))
		return 0;
	lua_settop(L, 2);
	if (lua_rawequal(L, 2, UP_FIELDS))
		return decode_fields(L);
	if (lua_rawequal(L, 2, UP_STACK))
		return make_stack(L);
	return 0;
}

static int text_record_next(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 2);
	if (lua_next(L, 1))
		return 2;
	lua_pushnil(L);
	return 1;
}

/* A text record's __pairs: every key, fields among them (decoded first). */
static int text_record_pairs(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lua_pushvalue(L, UP_FIELDS);
	if (lua_rawget(L, 1) == LUA_TNIL)
		decode_fields(L);
	lua_settop(L, 1);
	make_stack(L);
	lua_settop(L, 1);
	lua_pushvalue(L, lua_upvalueindex(NUP + 1));
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

/* Push the table of the stacks that wait for their first read (own.frames,
 * made once: weak keys). */
static void frames_table(lua_State *L, int own)
{
	if (lua_getfield(L, own, "frames") == LUA_TTABLE)
		return;
	lua_pop(L, 1);
	lua_newtable(L);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	lua_setfield(L, own, "frames");
}

/* The record metatable of this source's text records (made once, kept in
 * own.meta): the base one's entries, __index and __pairs bound to the
 * source's event entries. */
static int text_meta(lua_State *L, int own, int evtab, int keys)
{
	if (lua_getfield(L, own, "meta") == LUA_TTABLE)
		return lua_gettop(L);
	lua_pop(L, 1);
	dp_record_meta(L);
	lua_pushvalue(L, evtab);
	lua_rawgeti(L, keys, DP_K_FIELDS);
	lua_rawgeti(L, keys, DP_K_NAME);
	lua_rawgeti(L, keys, DP_K_PAYLOAD);
	lua_rawgeti(L, keys, DP_K_STACK);
	frames_table(L, own);
	for (int i = 0; i < NUP - 6; i++)
		lua_pushnil(L); /* UP_LASTNAME .. UP_LASTSTACK */
	for (int i = 0; i < NUP; i++)
		lua_pushvalue(L, -NUP);
	lua_pushcclosure(L, text_record_index, NUP);
	lua_setfield(L, -(NUP + 2), "__index");
	lua_pushcfunction(L, text_record_next);
	lua_pushcclosure(L, text_record_pairs, NUP + 1);
	lua_setfield(L, -2, "__pairs");
	lua_pushvalue(L, -1);
	lua_setfield(L, own, "meta");
	return lua_gettop(L);
}

/* working stack slots during a feed; cur holds the uservalue of the last
 * record's event, whose name is in last (records of one event in a row
 * skip the lookup) */
struct slots {
	int evtab, names, syms, stack, meta, frames, cur;
	int key0; /* the record keys DP_K_NAME..DP_K_FIELDS at key0 + k */
	int cname, csys; /* cur's event name and system (or nil) */
	struct tev *last_e;
	char last[64];
	size_t last_len;
	/* the comm and flags of the record before, in stack slots: a run of
	 * records from one task is not interned anew each line */
	struct lastval {
		int slot;
		size_t n; /* > sizeof(text): none */
		char text[32];
	} comm, flags;
};

/* Push the string p[0..n), the one in lv's slot when it is the same. */
static void push_again(lua_State *L, struct lastval *lv, const char *p, size_t n)
{
	if (lv->n == n && memcmp(lv->text, p, n) == 0) {
		lua_pushvalue(L, lv->slot);
		return;
	}
	lua_pushlstring(L, p, n);
	if (n < sizeof(lv->text)) {
		memcpy(lv->text, p, n);
		lv->n = n;
		lua_pushvalue(L, -1);
		lua_replace(L, lv->slot);
	}
}

/* t[key k] = value: the key pushed first (record.h's dp_setkey, without
 * moving the value under it), from the feed's stack slots */
#define KEY(k) lua_pushvalue(L, s->key0 + (k))

static void event_line(lua_State *L, struct dp_textdec *t, struct dp_fill *f, struct slots *s,
		       struct dp_line *ln, int hold)
{
	struct tev *e;
	int nameidx, uv, ref, rec;
	if (s->last_len && ln->name.n == s->last_len && memcmp(ln->name.p, s->last, s->last_len) == 0 &&
	    !ln->fn_ip.n) {
		e = s->last_e; /* the same event as the record before */
		uv = s->cur;
		lua_pushvalue(L, s->cname);
		nameidx = lua_gettop(L);
	} else {
		lua_pushlstring(L, ln->name.p, ln->name.n);
		nameidx = lua_gettop(L);
		lua_pushvalue(L, nameidx);
		if (lua_rawget(L, s->evtab) == LUA_TNIL) {
			lua_pop(L, 1);
			make_entry(L, t, s->evtab, s->names, s->syms, nameidx, ln->fn_ip.n != 0);
		}
		e = lua_touserdata(L, -1);
		lua_getiuservalue(L, -1, 1);
		lua_replace(L, s->cur);
		lua_pop(L, 1);
		uv = s->cur;
		lua_rawgeti(L, uv, 0);
		lua_replace(L, s->cname);
		lua_rawgeti(L, uv, -1);
		lua_replace(L, s->csys);
		s->last_len = 0;
		if (ln->name.n < sizeof(s->last) && !ln->fn_ip.n) {
			memcpy(s->last, ln->name.p, ln->name.n);
			s->last_len = ln->name.n;
			s->last_e = e;
		}
	}
	/* room for every key a record may get (fields when first read, a
	 * stack, lost_before) without growing */
	lua_createtable(L, 0, 11);
	rec = lua_gettop(L);
	lua_pushvalue(L, s->meta);
	lua_setmetatable(L, rec);
	KEY(DP_K_NAME);
	lua_pushvalue(L, nameidx);
	lua_rawset(L, rec);
	if (lua_type(L, s->csys) == LUA_TSTRING) {
		KEY(DP_K_SYSTEM);
		lua_pushvalue(L, s->csys);
		lua_rawset(L, rec);
	}
	KEY(DP_K_COMM);
	push_again(L, &s->comm, ln->comm.p, ln->comm.n);
	lua_rawset(L, rec);
	KEY(DP_K_PID);
	lua_pushinteger(L, ln->pid);
	lua_rawset(L, rec);
	KEY(DP_K_CPU);
	lua_pushinteger(L, ln->cpu);
	lua_rawset(L, rec);
	KEY(DP_K_TS);
	lua_pushnumber(L, (lua_Number)ln->ts_ns / 1e9);
	lua_rawset(L, rec);
	KEY(DP_K_FLAGS);
	push_again(L, &s->flags, ln->flags.p, ln->flags.n);
	lua_rawset(L, rec);
	KEY(DP_K_PAYLOAD);
	lua_pushlstring(L, ln->payload.p, ln->payload.n);
	lua_rawset(L, rec);
	if (ln->fn_ip.n || e->eager) {
		KEY(DP_K_FIELDS);
		push_fields(L, t, e, uv, ln->payload);
		if (ln->fn_ip.n) { /* the function tracer: ftrace:function's fields */
			lua_pushlstring(L, ln->fn_ip.p, ln->fn_ip.n);
			lua_setfield(L, -2, "ip");
			lua_pushlstring(L, ln->fn_parent.p, ln->fn_parent.n);
			lua_setfield(L, -2, "parent_ip");
		}
		lua_rawset(L, rec);
	} /* else the record's __index decodes them from its payload when first read */
	ref = dp_join_record(L, f->join, f->refs, f->keys, ln->cpu, hold);
	if (t->live && ln->pid > 0 && ln->comm.n == 5 && memcmp(ln->comm.p, "<...>", 5) == 0)
		dp_misses_add(L, &t->misses, ref, (int)ln->pid); /* no cmdline saved yet */
	lua_settop(L, nameidx - 1);
}

/* The end of a stack's frames: they go to their record (s->stack), to be
 * made a table when rec.stack is first read. */
static void stack_done(lua_State *L, struct dp_textdec *t, struct dp_fill *f, struct slots *s)
{
	t->collecting = 0;
	if (lua_istable(L, s->stack)) {
		lua_pushvalue(L, s->stack);
		lua_pushlstring(L, t->frames, t->frames_len);
		lua_rawset(L, s->frames);
	}
	lua_pushnil(L);
	lua_replace(L, s->stack);
	dp_join_stack_done(L, f->join, f->refs, f->keys);
}

static void add_frame(lua_State *L, struct dp_textdec *t, const char *p, size_t n)
{
	if (t->frames_len + n + 2 > t->frames_cap) {
		size_t cap = t->frames_cap ? t->frames_cap : 4096;
		char *nb;
		while (cap < t->frames_len + n + 2)
			cap *= 2;
		nb = realloc(t->frames, cap);
		if (!nb)
			luaL_error(L, "out of memory");
		t->frames = nb;
		t->frames_cap = cap;
	}
	t->frames[t->frames_len++] = '\n';
	memcpy(t->frames + t->frames_len, p, n);
	t->frames_len += n;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void text_line(lua_State *L, struct dp_textdec *t, struct dp_fill *f, struct slots *s,
		      const char *p, size_t n, int hold)
{
	struct dp_line ln;
	enum dp_line_kind k;
	if (t->collecting && n > 4 && memcmp(p, " => ", 4) == 0) {
		/* a frame of the stack being read (dp_parse_line's DP_LINE_FRAME) */
		size_t b = 4;
		if (p[n - 1] == '\r')
			n--;
		while (b < n && is_blank(p[b]))
			b++;
		while (n > b && is_blank(p[n - 1]))
			n--;
		add_frame(L, t, p + b, n - b);
		return;
	}
	k = dp_parse_line(p, n, &ln);
	if (k != DP_LINE_FRAME && t->collecting)
		stack_done(L, t, f, s);
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
		if (t->collecting) /* else frames of a stack that belongs to no record */
			add_frame(L, t, ln.frame.p, ln.frame.n);
		return;
	case DP_LINE_STACK: {
		int ref = dp_join_stack_open(f->join, ln.cpu);
		if (ref == LUA_NOREF)
			return;
		lua_rawgeti(L, f->refs, ref);
		lua_replace(L, s->stack); /* the record, kept at hand while its frames arrive */
		if (!t->frames_cap)
			add_frame(L, t, "", 0); /* the buffer made */
		t->frames[0] = f->join->raw_stacks ? 'r' : 't'; /* then "\n<frame>" each */
		t->frames_len = 1;
		t->collecting = 1;
		return;
	}
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

/* what a line of a feed is handed to text_line with */
struct line_ctx {
	lua_State *L;
	struct dp_textdec *t;
	struct dp_fill *f;
	struct slots *s;
	int hold;
};

static void line_of(void *ctx, const char *p, size_t n)
{
	struct line_ctx *c = ctx;
	text_line(c->L, c->t, c->f, c->s, p, n, c->hold);
}

void dp_textdec_feed(lua_State *L, struct dp_textdec *t, struct dp_fill *f, int hold,
		     int how)
{
	int final = how & DP_TEXT_FINAL;
	struct slots s;
	int top = lua_gettop(L);
	/* the feed's own slots, then what a line pushes on top of them */
	luaL_checkstack(L, 48, "text decoder");
	s.evtab = own_table(L, f->own, "ev", 1);
	s.names = own_table(L, f->own, "names", 0);
	s.syms = own_table(L, f->own, "syms", 0);
	lua_getfield(L, f->own, "stack"); /* the record whose frames may go on */
	s.stack = lua_gettop(L);
	s.meta = text_meta(L, f->own, s.evtab, f->keys);
	frames_table(L, f->own);
	s.frames = lua_gettop(L);
	lua_pushnil(L);
	s.cur = lua_gettop(L);
	lua_pushnil(L);
	s.cname = lua_gettop(L);
	lua_pushnil(L);
	s.csys = lua_gettop(L);
	s.key0 = lua_gettop(L) + 1 - DP_K_NAME;
	for (int k = DP_K_NAME; k <= DP_K_FIELDS; k++)
		lua_rawgeti(L, f->keys, k);
	s.last_len = 0;
	s.last_e = NULL;
	lua_pushnil(L);
	s.comm.slot = lua_gettop(L);
	s.comm.n = sizeof(s.comm.text) + 1;
	lua_pushnil(L);
	s.flags.slot = lua_gettop(L);
	s.flags.n = sizeof(s.flags.text) + 1;
	{
		struct line_ctx c = {L, t, f, &s, hold};
		dp_lines_each(&t->lines, final, line_of, &c);
	}
	if ((how & (DP_TEXT_ENTRIES | DP_TEXT_FINAL)) && t->collecting) {
		/* trace_pipe reads end on entry boundaries; a file at its end */
		stack_done(L, t, f, &s);
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
