/*
 * decode.c - the binary decoder (see decode.h). Per record it pushes only
 * what it returns; event, field, reason and symbol names are Lua strings
 * made once per event and fetched by index. An event's info is found by
 * its id in an array.
 */

/***
 * @submodule dropprobe.core
 */
#include "decode.h"
#include "pktfilter.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event-parse.h>

#include "format.h"
#include "ksym.h"
#include "packet.h"
#include "parse.h"
#include "record.h"

enum fkind { FK_UNSIGNED, FK_POINTER, FK_SIGNED, FK_SYMBOL, FK_ENUM, FK_STRING, FK_BYTES,
	     FK_ADDR };

/* how an FK_ADDR field prints: %pI4, %pI6, %pI6c, %pIS[p][c] */
enum { ADDR_V4 = 1, ADDR_V6 = 2, ADDR_SOCK = 4, ADDR_PORT = 8, ADDR_COMPACT = 16 };

struct fdesc {
	struct tep_format_field *f;
	enum fkind kind;
	int addr;     /* ADDR_ flags */
	int name_idx; /* the field name in the event's cache table */
	int addr_idx; /* "<name>_addr" for FK_SYMBOL */
	int syms_idx; /* the field's symbol table in the event's cache table */
	/* the value (a pointer, a symbol's address) printed for the record
	 * before, kept at val_idx in the event's cache table: the same value
	 * is not formatted nor interned anew. score: hits less misses; below
	 * KEEP_MIN the field changes every record (an skb's address), and
	 * nothing is kept */
	unsigned long long last;
	int val_idx;
	int have;
	int score;
};

#define KEEP_MIN (-16)

struct dp_evinfo {
	int nf;
	struct fdesc *fd;
	/* a drop probe's packet: the bytes from skb->head and the network
	 * header's offset from head (kprobe fields pkt and nh) */
	struct tep_format_field *pkt, *nh;
	/* and, where the probe reads them, its device's name and netns inode */
	struct tep_format_field *dev, *netns;
	/* the flags column of the record before (flags | preempt << 8, -1:
	 * none), kept at flags_idx in the event's cache table */
	int flags_key, flags_idx;
};

/* stack positions of the working tables from dp_decode_begin */
enum { W_SYM, W_COMM, W_EV, W_META, W_N };

const char *dp_decoder_init(lua_State *L, struct dp_decoder *d, struct dp_ksyms *syms,
			    int own_tep, int symbols)
{
	struct tep_handle *tep = syms->tep;
	struct tep_event *kst, *any;
	memset(d, 0, sizeof(*d));
	d->tep = tep;
	d->syms = syms;
	d->own_tep = own_tep;
	d->cache_ref = LUA_NOREF;
	d->missed_pid = -1;
	d->want_port = -1;
	d->native = tep_is_file_bigendian(tep) == tep_is_local_bigendian(tep);
	kst = tep_find_event_by_name(tep, "ftrace", "kernel_stack");
	d->stack_id = kst ? kst->id : -1;
	if (kst) {
		d->stack_size = tep_find_field(kst, "size");
		d->stack_caller = tep_find_field(kst, "caller");
	}
	any = kst; /* the common fields are the same for every event */
	if (!any) {
		struct tep_event **all = tep_list_events(tep, TEP_EVENT_SORT_ID);
		any = all ? all[0] : NULL;
	}
	if (!any)
		return "no event formats found";
	d->common_pid = tep_find_common_field(any, "common_pid");
	d->common_flags = tep_find_common_field(any, "common_flags");
	d->common_preempt = tep_find_common_field(any, "common_preempt_count");
	if (!d->common_pid || !d->common_flags || !d->common_preempt)
		return "event formats lack the common fields";
	lua_createtable(L, 0, 5);
	lua_newtable(L);
	lua_setfield(L, -2, "ev");
	lua_newtable(L);
	lua_setfield(L, -2, "sym");
	lua_newtable(L);
	lua_setfield(L, -2, "comm");
	if (symbols)
		lua_pushvalue(L, symbols);
	else
		lua_newtable(L);
	lua_setfield(L, -2, "over");
	dp_record_meta(L);
	lua_setfield(L, -2, "meta");
	d->cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return NULL;
}

void dp_decoder_free(lua_State *L, struct dp_decoder *d)
{
	for (int i = 0; i < d->nbyid; i++)
		if (d->byid[i]) {
			free(d->byid[i]->fd);
			free(d->byid[i]);
		}
	free(d->byid);
	d->byid = NULL;
	d->nbyid = 0;
	if (d->cache_ref != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, d->cache_ref);
	d->cache_ref = LUA_NOREF;
	if (d->tep && d->own_tep)
		tep_free(d->tep);
	d->tep = NULL;
	dp_pktfilter_free(d->match);
	d->match = NULL;
}

static void push_cache(lua_State *L, struct dp_decoder *d, const char *what)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, d->cache_ref);
	lua_getfield(L, -1, what);
	lua_remove(L, -2);
}

void dp_decoder_meta(lua_State *L, struct dp_decoder *d)
{
	push_cache(L, d, "meta");
}

void dp_decoder_comms(lua_State *L, struct dp_decoder *d)
{
	push_cache(L, d, "comm");
}

int dp_decode_begin(lua_State *L, struct dp_decoder *d)
{
	int base;
	lua_rawgeti(L, LUA_REGISTRYINDEX, d->cache_ref);
	base = lua_gettop(L);
	lua_getfield(L, base, "sym");
	lua_getfield(L, base, "comm");
	lua_getfield(L, base, "ev");
	lua_getfield(L, base, "meta");
	lua_remove(L, base);
	return base;
}

void dp_decode_end(lua_State *L)
{
	lua_pop(L, W_N);
}

/* The kind of a field from how the print format prints it. */
static void print_kinds(struct tep_event *ev, struct fdesc *fd, int nf)
{
	struct dp_conv cv[DP_CONV_MAX];
	const char *tail;
	size_t tail_len;
	int n = dp_print_convs(ev, cv, DP_CONV_MAX, &tail, &tail_len);
	for (int i = 0; i < n; i++) {
		const char *s = cv[i].spec + cv[i].spec_len;
		const char *p = memchr(cv[i].spec, 'p', cv[i].spec_len);
		if (!cv[i].field || !p || p + 1 >= s)
			continue;
		for (int k = 0; k < nf; k++) {
			struct fdesc *d = &fd[k];
			if (strcmp(d->f->name, cv[i].field) != 0 || d->kind == FK_ENUM)
				continue;
			if (strchr("SsFfB", p[1])) {
				d->kind = FK_SYMBOL;
			} else if (p[1] == 'I' || p[1] == 'i') {
				int a = 0;
				if (p + 2 < s && p[2] == '4')
					a = ADDR_V4;
				else if (p + 2 < s && p[2] == '6')
					a = ADDR_V6;
				else if (p + 2 < s && p[2] == 'S')
					a = ADDR_SOCK;
				for (const char *q = p + 3; q < s; q++) {
					if (*q == 'p')
						a |= ADDR_PORT;
					if (*q == 'c')
						a |= ADDR_COMPACT;
				}
				if (a && !(d->f->flags & TEP_FIELD_IS_DYNAMIC)) {
					d->kind = FK_ADDR;
					d->addr = a;
				}
			}
		}
	}
}

/* A code address by its name: skb:kfree_skb's `location` is printed %pS
 * from 6.2 and %p before, a drop probe's `location` (a return address,
 * fetched as :symbol) is a u64; a record symbolizes it everywhere. */
static int is_code_address(struct tep_format_field *f)
{
	return strcmp(f->name, "location") == 0 && f->size == 8 &&
	       !(f->flags & (TEP_FIELD_IS_ARRAY | TEP_FIELD_IS_DYNAMIC | TEP_FIELD_IS_SIGNED));
}

/* Build (once) what decoding an event needs; the event's cache table is
 * left in the ev table (by id). */
static struct dp_evinfo *event_info(lua_State *L, struct dp_decoder *d, int base, int id)
{
	struct tep_event *ev;
	struct dp_evinfo *ei;
	struct tep_format_field *f;
	int n = 0, idx = 2, top;
	if (id < 0 || id > (1 << 20))
		return NULL;
	ev = tep_find_event(d->tep, id);
	if (!ev)
		return NULL;
	if (id >= d->nbyid) {
		int nn = d->nbyid ? d->nbyid : 64;
		struct dp_evinfo **nb;
		while (nn <= id)
			nn *= 2;
		nb = realloc(d->byid, sizeof(*nb) * (size_t)nn);
		if (!nb)
			luaL_error(L, "out of memory");
		for (int i = d->nbyid; i < nn; i++)
			nb[i] = NULL;
		d->byid = nb;
		d->nbyid = nn;
	}
	for (f = ev->format.fields; f; f = f->next)
		n++;
	ei = calloc(1, sizeof(*ei));
	if (!ei)
		luaL_error(L, "out of memory");
	ei->fd = calloc((size_t)(n ? n : 1), sizeof(struct fdesc));
	if (!ei->fd) {
		free(ei);
		luaL_error(L, "out of memory");
	}
	d->byid[id] = ei;
	/* the Lua side: [1]=name, [2]=system, then field names and tables */
	top = lua_gettop(L);
	lua_createtable(L, 2 + 2 * n, 1);
	lua_pushstring(L, ev->name);
	lua_rawseti(L, -2, 1);
	lua_pushstring(L, ev->system ? ev->system : "");
	lua_rawseti(L, -2, 2);
	dp_push_symbols(L, ev); /* { field = {[n]=name} } */
	/* tables the caller gave: for fields the format names nothing for,
	 * and the numbers the format's own table leaves out (the non-drops
	 * and subsystem reasons the kernel's BTF names) */
	push_cache(L, d, "over");
	if (lua_getfield(L, -1, ev->name) == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2)) { /* syms over evover field given */
			lua_pushvalue(L, -2);
			if (lua_rawget(L, -6) != LUA_TTABLE) {
				lua_pop(L, 1);
				lua_pushvalue(L, -2);
				lua_insert(L, -2);
				lua_rawset(L, -6);
				continue;
			}
			/* syms over evover field given own */
			lua_pushnil(L);
			while (lua_next(L, -3)) {
				lua_pushvalue(L, -2);
				if (lua_rawget(L, -4) == LUA_TNIL) {
					lua_pop(L, 1);
					lua_pushvalue(L, -2);
					lua_insert(L, -2);
					lua_rawset(L, -4);
				} else {
					lua_pop(L, 2);
				}
			}
			lua_pop(L, 2);
		}
	}
	lua_pop(L, 2);
	lua_setfield(L, -2, "syms");
	/* the field order, for printing a record with this format */
	lua_getfield(L, base + W_META, "__order");
	lua_pushfstring(L, "%s:%s", ev->system ? ev->system : "", ev->name);
	lua_createtable(L, n, 0);
	for (f = ev->format.fields; f; f = f->next) {
		struct fdesc *fd = &ei->fd[ei->nf++];
		fd->f = f;
		lua_pushstring(L, f->name);
		lua_rawseti(L, -2, ei->nf);
	}
	lua_rawset(L, -3);
	lua_pop(L, 1);
	for (int i = 0; i < ei->nf; i++) {
		struct fdesc *fd = &ei->fd[i];
		f = fd->f;
		fd->name_idx = ++idx;
		lua_pushstring(L, f->name);
		lua_rawseti(L, -2, idx);
		lua_getfield(L, -1, "syms");
		if (lua_getfield(L, -1, f->name) == LUA_TTABLE) {
			fd->kind = FK_ENUM;
			fd->syms_idx = ++idx;
			lua_rawseti(L, -3, idx); /* by index: no lookup per record */
			lua_pop(L, 1);
			continue;
		}
		lua_pop(L, 2);
		/* libtraceevent calls u8 arrays strings too: only char is text */
		if ((f->flags & TEP_FIELD_IS_STRING) && strstr(f->type, "char"))
			fd->kind = FK_STRING;
		else if (f->flags & (TEP_FIELD_IS_ARRAY | TEP_FIELD_IS_DYNAMIC))
			fd->kind = FK_BYTES;
		else if (is_code_address(f))
			fd->kind = FK_SYMBOL;
		else if (strchr(f->type, '*') && f->size == 8)
			fd->kind = FK_POINTER;
		else if (f->flags & TEP_FIELD_IS_SIGNED)
			fd->kind = FK_SIGNED;
		else
			fd->kind = FK_UNSIGNED;
	}
	print_kinds(ev, ei->fd, ei->nf);
	{
		struct tep_format_field *pkt = tep_find_field(ev, "pkt"), *nh = tep_find_field(ev, "nh");
		if (pkt && nh && (pkt->flags & TEP_FIELD_IS_ARRAY) && !(nh->flags & TEP_FIELD_IS_ARRAY)) {
			ei->pkt = pkt;
			ei->nh = nh;
			ei->dev = tep_find_field(ev, "dev");
			ei->netns = tep_find_field(ev, "netns");
			if (ei->dev && !(ei->dev->flags & TEP_FIELD_IS_DYNAMIC))
				ei->dev = NULL;
			if (ei->netns && (ei->netns->flags & (TEP_FIELD_IS_ARRAY | TEP_FIELD_IS_DYNAMIC)))
				ei->netns = NULL;
		}
	}
	for (int i = 0; i < ei->nf; i++) {
		struct fdesc *fd = &ei->fd[i];
		if (fd->kind == FK_SYMBOL) {
			fd->addr_idx = ++idx;
			lua_pushfstring(L, "%s_addr", fd->f->name);
			lua_rawseti(L, -2, idx);
		}
		fd->val_idx = ++idx;
	}
	ei->flags_key = -1;
	ei->flags_idx = ++idx;
	lua_rawseti(L, base + W_EV, id);
	lua_settop(L, top);
	return ei;
}

/* Push "sym+0xoff/0xsize" for a kernel address (cached), or the hex address. */
static void push_symbol(lua_State *L, struct dp_decoder *d, int symtab, unsigned long long addr)
{
	char buf[512];
	if (lua_rawgeti(L, symtab, (lua_Integer)addr) != LUA_TNIL)
		return;
	lua_pop(L, 1);
	dp_ksym_format(d->syms, addr, 1, buf, sizeof(buf));
	lua_pushstring(L, buf);
	lua_pushvalue(L, -1);
	lua_rawseti(L, symtab, (lua_Integer)addr);
}

static void push_hex(lua_State *L, unsigned long long v)
{
	char hex[16];
	dp_hex16(hex, v);
	lua_pushlstring(L, hex, 16);
}

/* v as 16 hex digits, the string of the record before where v is the same
 * (evcache: the event's cache table, a stack index) */
static void push_hex_kept(lua_State *L, struct fdesc *fd, int evcache, unsigned long long v)
{
	if (fd->score < KEEP_MIN) {
		push_hex(L, v);
		return;
	}
	if (fd->have && fd->last == v) {
		lua_rawgeti(L, evcache, fd->val_idx);
		if (fd->score < 64)
			fd->score++;
		return;
	}
	push_hex(L, v);
	fd->score--;
	fd->have = 1;
	fd->last = v;
	lua_pushvalue(L, -1);
	lua_rawseti(L, evcache, fd->val_idx);
}

/* The kernel's latency flags column, e.g. "..s1." (cols 5) or "..s1" (4) */
static void push_flags(lua_State *L, unsigned flags, unsigned pc, int cols)
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
	lua_pushlstring(L, s, cols == 4 ? 4 : 5);
}

/* The comm of pid from the cache or the formats' saved_cmdlines (memory
 * only: no file is read here). A miss is not cached: the source may learn
 * the name later (dp_misses, comm.c) and d->missed_pid tells it which. */
static void push_comm(lua_State *L, struct dp_decoder *d, int commtab, int pid)
{
	const char *c;
	if (lua_rawgeti(L, commtab, pid) != LUA_TNIL)
		return;
	lua_pop(L, 1);
	if (pid == 0) {
		lua_pushliteral(L, "<idle>");
	} else if ((c = tep_data_comm_from_pid(d->tep, pid)) && strcmp(c, "<...>") != 0) {
		lua_pushstring(L, c);
	} else {
		lua_pushliteral(L, "<...>");
		if (!d->from_file) {
			d->missed_pid = pid;
			return;
		}
	}
	lua_pushvalue(L, -1);
	lua_rawseti(L, commtab, pid);
}

/* A number field of a record: read in place where the records are in this
 * host's byte order (a live buffer; a trace.dat of a host like this one),
 * else through libtraceevent, which swaps. */
static inline unsigned long long num(const struct dp_decoder *d, struct tep_format_field *f,
				     const void *data)
{
	const unsigned char *p = (const unsigned char *)data + f->offset;
	unsigned long long v = 0;
	if (d->native) {
		uint8_t b;
		uint16_t h;
		uint32_t w;
		uint64_t q;
		switch (f->size) {
		case 1: memcpy(&b, p, 1); return b;
		case 2: memcpy(&h, p, 2); return h;
		case 4: memcpy(&w, p, 4); return w;
		case 8: memcpy(&q, p, 8); return q;
		default: break;
		}
	}
	tep_read_number_field(f, data, &v);
	return v;
}

/* Where an array or __data_loc field's bytes are, bounded by the record. */
static void field_span(const struct dp_decoder *d, struct tep_format_field *f, void *data, int size,
		       int *off, int *len)
{
	*off = f->offset;
	*len = f->size;
	if (f->flags & TEP_FIELD_IS_DYNAMIC) {
		unsigned int dl = (unsigned int)num(d, f, data);
		*off = (int)(dl & 0xffff);
		*len = (int)(dl >> 16);
		if (f->flags & TEP_FIELD_IS_RELATIVE)
			*off += f->offset + f->size;
	}
	if (*off < 0 || *len < 0 || *off + *len > size)
		*off = *len = 0;
}

/* An address as the kernel's %pI4 / %pI6[c] / %pIS[p][c] prints it. */
static void push_addr(lua_State *L, const unsigned char *b, int len, int how)
{
	char out[INET6_ADDRSTRLEN + 16], ip[INET6_ADDRSTRLEN];
	unsigned port = 0;
	int v6;
	const unsigned char *a;
	if (how & ADDR_SOCK) {
		unsigned family;
		if (len < 8) {
			lua_pushlstring(L, (const char *)b, (size_t)len);
			return;
		}
		family = b[0] | (unsigned)b[1] << 8; /* host order: little endian here */
		port = (unsigned)b[2] << 8 | b[3];
		if (family == 2) {
			v6 = 0;
			a = b + 4;
		} else if (family == 10 && len >= 24) {
			v6 = 1;
			a = b + 8;
		} else {
			lua_pushliteral(L, "(einval)");
			return;
		}
	} else {
		v6 = (how & ADDR_V6) != 0;
		a = b;
		if (len < (v6 ? 16 : 4)) {
			lua_pushlstring(L, (const char *)b, (size_t)len);
			return;
		}
	}
	if (!v6) {
		snprintf(ip, sizeof(ip), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
	} else if ((how & (ADDR_COMPACT | ADDR_SOCK)) && inet_ntop(AF_INET6, a, ip, sizeof(ip))) {
		/* compressed, as %pI6c (and %pISc) print */
	} else {
		snprintf(ip, sizeof(ip), "%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x",
			 a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
			 a[12], a[13], a[14], a[15]);
	}
	if ((how & ADDR_SOCK) && (how & ADDR_PORT))
		snprintf(out, sizeof(out), v6 ? "[%s]:%u" : "%s:%u", ip, port);
	else
		snprintf(out, sizeof(out), "%s", ip);
	lua_pushstring(L, out);
}

/* A kernel_stack entry as a table of frames. */
static void push_stack(lua_State *L, struct dp_decoder *d, int symtab, void *data, int size)
{
	long long n = (long long)num(d, d->stack_size, data);
	int off = d->stack_caller->offset;
	if (n < 0 || off + n * 8 > size)
		n = (size - off) / 8;
	if (n < 0)
		n = 0;
	lua_createtable(L, (int)n, 0);
	for (long long i = 0; i < n; i++) {
		unsigned long long a;
		memcpy(&a, (char *)data + off + i * 8, 8);
		if (!a)
			break;
		push_symbol(L, d, symtab, a);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

/* The Lua table of a decoded packet. */
static void packet_table(lua_State *L, const struct dp_packet *pp)
{
	struct dp_packet p = *pp;
	const char *pn;
	lua_createtable(L, 0, 9);
	lua_pushinteger(L, p.family);
	lua_setfield(L, -2, "family");
	lua_pushstring(L, p.saddr);
	lua_setfield(L, -2, "saddr");
	lua_pushstring(L, p.daddr);
	lua_setfield(L, -2, "daddr");
	pn = dp_packet_proto_name(p.proto);
	if (pn)
		lua_pushstring(L, pn);
	else
		lua_pushinteger(L, p.proto);
	lua_setfield(L, -2, "proto");
	if (p.sport >= 0) {
		lua_pushinteger(L, p.sport);
		lua_setfield(L, -2, "sport");
		lua_pushinteger(L, p.dport);
		lua_setfield(L, -2, "dport");
	}
	if (p.type >= 0) {
		lua_pushinteger(L, p.type);
		lua_setfield(L, -2, "type");
		lua_pushinteger(L, p.code);
		lua_setfield(L, -2, "code");
	}
	lua_pushinteger(L, p.len);
	lua_setfield(L, -2, "len");
	if (p.bad) {
		lua_pushliteral(L, "ip header length below 20 bytes: addresses only");
		lua_setfield(L, -2, "malformed");
	}
}

/* Whether a packet passes the decoder's port, host and filter expression
 * conditions; ip is the n bytes from its IP header on. */
static int wanted(const struct dp_decoder *d, const struct dp_packet *p, int have, const unsigned char *ip,
		  size_t n)
{
	if (d->match) {
		if (!have)
			return 0;
		if (p->len && p->len < n)
			n = p->len; /* the packet's own bytes, not what follows it in the buffer */
		if (!dp_pktfilter_match(d->match, ip, n, p->len))
			return 0;
	}
	if (d->want_port >= 0 && !(have && (p->sport == d->want_port || p->dport == d->want_port)))
		return 0;
	if (d->nhosts) {
		int hit = 0;
		for (int i = 0; have && !hit && i < d->nhosts; i++)
			hit = dp_prefix_match(&d->hosts[i], p->family, p->sbin) ||
			      dp_prefix_match(&d->hosts[i], p->family, p->dbin);
		if (!hit)
			return 0;
	}
	return 1;
}

/* For the other sinks of decoded events (the path tracker, src_path.c):
 * the decoder's packet conditions, and the packet table, as rec.packet has
 * them. */
int dp_decoder_wants(const struct dp_decoder *d, const struct dp_packet *p, int have,
		     const unsigned char *ip, size_t n)
{
	return wanted(d, p, have, ip, n);
}

int dp_decoder_has_condition(const struct dp_decoder *d)
{
	return d->match || d->want_port >= 0 || d->nhosts;
}

void dp_packet_push(lua_State *L, const struct dp_packet *p)
{
	packet_table(L, p);
}

/* The packet's device and network namespace into the packet table on top,
 * where the probe read them: none when the skb had no device (the kernel
 * gives "(fault)", or nothing, for the name it could not read). */
static void push_device(lua_State *L, const struct dp_decoder *d, struct dp_evinfo *ei, void *data,
			int size)
{
	int off, len;
	const char *name;
	if (!ei->dev)
		return;
	field_span(d, ei->dev, data, size, &off, &len);
	name = (const char *)data + off;
	while (len > 0 && name[len - 1] == 0)
		len--;
	if (len <= 0 || (len == 7 && memcmp(name, "(fault)", 7) == 0))
		return;
	lua_pushlstring(L, name, (size_t)len);
	lua_setfield(L, -2, "dev");
	if (ei->netns && ei->netns->offset + ei->netns->size <= size) {
		unsigned long long ino = num(d, ei->netns, data);
		if (ino) {
			lua_pushinteger(L, (lua_Integer)ino);
			lua_setfield(L, -2, "netns");
		}
	}
}

/* rec.packet from the probe's bytes, when they hold an IP header (record
 * on top); 0 when the packet fails the decoder's condition */
static int push_packet(lua_State *L, const struct dp_decoder *d, struct dp_evinfo *ei, int keys,
		       void *data, int size)
{
	struct dp_packet p;
	int off, len, have;
	size_t nh = 0;
	field_span(d, ei->pkt, data, size, &off, &len);
	if (ei->nh->offset + ei->nh->size <= size)
		nh = (size_t)num(d, ei->nh, data);
	/* decoded: the network header lies inside the bytes read */
	have = ei->nh->offset + ei->nh->size <= size &&
	       dp_packet_decode((unsigned char *)data + off, (size_t)len, nh, &p);
	if (!wanted(d, &p, have, (unsigned char *)data + off + (have ? nh : 0), have ? (size_t)len - nh : 0))
		return 0;
	if (have) {
		packet_table(L, &p);
		push_device(L, d, ei, data, size);
		dp_setkey(L, keys, DP_K_PACKET);
	}
	return 1;
}

/***
 * Whether a string is an address or a prefix the packet condition takes
 * (`packet.c`: `127.0.0.1`, `[::1]`, `127.0.0.0/8`, `fe80::/10`; names are
 * resolved before, `util.resolve_host`).
 * @function parse_prefix
 * @tparam string s
 * @treturn integer|nil family (4 or 6), or nil and a message
 * @treturn integer the prefix length
 */
static int parse_prefix(lua_State *L)
{
	struct dp_prefix p;
	const char *s = luaL_checkstring(L, 1);
	if (!dp_prefix_parse(s, &p)) {
		luaL_pushfail(L);
		lua_pushfstring(L, "'%s' is no IPv4 or IPv6 address or prefix", s);
		return 2;
	}
	lua_pushinteger(L, p.family);
	lua_pushinteger(L, p.bits);
	return 2;
}

void dp_decoder_match(lua_State *L, struct dp_decoder *d, int idx)
{
	char err[512];
	const char *expr;
	dp_pktfilter_free(d->match);
	d->match = NULL;
	if (lua_isnoneornil(L, idx))
		return;
	expr = luaL_checkstring(L, idx);
	d->match = dp_pktfilter_compile(expr, err, sizeof(err));
	if (!d->match)
		luaL_error(L, "packet filter '%s': %s", expr, err);
}

/***
 * Whether a packet filter expression (tcpdump's language, pcap-filter(7))
 * compiles for raw IP packets, as `match` takes it.
 * @function check_packet_filter
 * @tparam string expr e.g. "udp and dst port 9999"
 * @treturn boolean|nil true, or nil and libpcap's message
 */
static int check_packet_filter(lua_State *L)
{
	char err[512];
	const char *expr = luaL_checkstring(L, 1);
	struct dp_pktfilter *f = dp_pktfilter_compile(expr, err, sizeof(err));
	if (!f) {
		luaL_pushfail(L);
		lua_pushstring(L, err);
		return 2;
	}
	dp_pktfilter_free(f);
	lua_pushboolean(L, 1);
	return 1;
}

/* Set the decoder's hosts from the list of prefixes at idx (at most
 * DP_HOSTS_MAX); an error for one that does not parse. */
void dp_decoder_hosts(lua_State *L, struct dp_decoder *d, int idx)
{
	d->nhosts = 0;
	if (lua_type(L, idx) != LUA_TTABLE)
		return;
	for (int i = 1; lua_rawgeti(L, idx, i) == LUA_TSTRING; i++) {
		if (d->nhosts == DP_HOSTS_MAX)
			luaL_error(L, "at most %d addresses or prefixes", DP_HOSTS_MAX);
		if (!dp_prefix_parse(lua_tostring(L, -1), &d->hosts[d->nhosts]))
			luaL_error(L, "'%s' is no IPv4 or IPv6 address or prefix", lua_tostring(L, -1));
		d->nhosts++;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/***
 * The headers in bytes a drop probe fetched from `skb->head` (`packet.c`):
 * IPv4, IPv6 behind its extension headers, TCP, UDP, ICMP, ICMPv6. A header
 * too short to be one (IHL < 5) still gives its addresses, with `malformed`
 * saying why.
 * @function decode_packet
 * @tparam string bytes
 * @tparam integer nh the network header's offset in bytes
 * @treturn table|nil `{ family, saddr, daddr, proto, sport, dport, type,
 *   code, len, malformed }`, or nil when no IP header is there
 */
static int decode_packet(lua_State *L)
{
	size_t n;
	const char *b = luaL_checklstring(L, 1, &n);
	lua_Integer nh = luaL_checkinteger(L, 2);
	struct dp_packet p;
	if (nh < 0 || !dp_packet_decode((const unsigned char *)b, n, (size_t)nh, &p)) {
		luaL_pushfail(L);
		return 1;
	}
	packet_table(L, &p);
	return 1;
}

void dp_decode_open(lua_State *L)
{
	lua_pushcfunction(L, decode_packet);
	lua_setfield(L, -2, "decode_packet");
	lua_pushcfunction(L, parse_prefix);
	lua_setfield(L, -2, "parse_prefix");
	lua_pushcfunction(L, check_packet_filter);
	lua_setfield(L, -2, "check_packet_filter");
}

int dp_decode(lua_State *L, struct dp_decoder *d, int base, int keys, int cpu, void *data,
	      int size, unsigned long long ts, int more)
{
	struct tep_record rec;
	struct dp_evinfo *ei;
	int id, pid;
	memset(&rec, 0, sizeof(rec));
	rec.data = data;
	rec.size = size;
	rec.ts = ts;
	rec.cpu = cpu;
	if (size < d->common_pid->offset + d->common_pid->size)
		return d->unknown++, DP_DEC_SKIP;
	id = tep_data_type(d->tep, &rec);
	if (id == d->stack_id && d->stack_caller) {
		push_stack(L, d, base + W_SYM, data, size);
		return DP_DEC_STACK;
	}
	ei = id >= 0 && id < d->nbyid ? d->byid[id] : NULL;
	if (!ei)
		ei = event_info(L, d, base, id);
	if (!ei) {
		d->unknown++;
		return DP_DEC_SKIP;
	}
	lua_rawgeti(L, base + W_EV, id); /* the event's cache */
	/* room for the eight keys every record has, the packet where the
	 * event has one, and what the caller may add (lost_before, rare,
	 * grows it) */
	lua_createtable(L, 0, 8 + (ei->pkt != NULL) + more);
	lua_pushvalue(L, base + W_META);
	lua_setmetatable(L, -2);
	/* each key fetched before its value: no value moved under it */
	lua_rawgeti(L, keys, DP_K_NAME);
	lua_rawgeti(L, -3, 1);
	lua_rawset(L, -3);
	lua_rawgeti(L, keys, DP_K_SYSTEM);
	lua_rawgeti(L, -3, 2);
	lua_rawset(L, -3);
	pid = (int)num(d, d->common_pid, data);
	lua_rawgeti(L, keys, DP_K_PID);
	lua_pushinteger(L, pid);
	lua_rawset(L, -3);
	lua_rawgeti(L, keys, DP_K_COMM);
	push_comm(L, d, base + W_COMM, pid);
	lua_rawset(L, -3);
	lua_rawgeti(L, keys, DP_K_CPU);
	lua_pushinteger(L, cpu);
	lua_rawset(L, -3);
	lua_rawgeti(L, keys, DP_K_TS);
	lua_pushnumber(L, (lua_Number)ts / 1e9);
	lua_rawset(L, -3);
	lua_rawgeti(L, keys, DP_K_FLAGS);
	{
		unsigned fl = (unsigned)num(d, d->common_flags, data) & 0xff;
		unsigned pc = (unsigned)num(d, d->common_preempt, data) & 0xff;
		int fk = (int)(fl | pc << 8);
		if (fk == ei->flags_key) {
			lua_rawgeti(L, -3, ei->flags_idx); /* as the record before */
		} else {
			push_flags(L, fl, pc, d->flag_cols);
			lua_pushvalue(L, -1);
			lua_rawseti(L, -5, ei->flags_idx);
			ei->flags_key = fk;
		}
	}
	lua_rawset(L, -3);
	lua_createtable(L, 0, ei->nf + 1);
	for (int i = 0; i < ei->nf; i++) {
		struct fdesc *fd = &ei->fd[i];
		unsigned long long v;
		int off, len;
		if (fd->f->offset + (fd->f->flags & TEP_FIELD_IS_DYNAMIC ? 4 : fd->f->size) > size)
			continue; /* a short record: what it has */
		lua_rawgeti(L, -3, fd->name_idx); /* key */
		switch (fd->kind) {
		case FK_STRING:
		case FK_BYTES:
			field_span(d, fd->f, data, size, &off, &len);
			lua_pushlstring(L, (char *)data + off,
					fd->kind == FK_STRING ? strnlen((char *)data + off, (size_t)len)
							      : (size_t)len);
			break;
		case FK_ADDR:
			field_span(d, fd->f, data, size, &off, &len);
			push_addr(L, (unsigned char *)data + off, len, fd->addr);
			break;
		case FK_ENUM:
			v = num(d, fd->f, data);
			lua_rawgeti(L, -4, fd->syms_idx);
			if (lua_rawgeti(L, -1, (lua_Integer)v) == LUA_TNIL) {
				lua_pop(L, 1);
				lua_pushinteger(L, (lua_Integer)v);
			}
			lua_remove(L, -2);
			break;
		case FK_SYMBOL:
			v = num(d, fd->f, data);
			push_symbol(L, d, base + W_SYM, v);
			lua_rawset(L, -3);
			lua_rawgeti(L, -3, fd->addr_idx);
			push_hex_kept(L, fd, lua_gettop(L) - 3, v);
			break;
		case FK_SIGNED: {
			long long sv;
			v = num(d, fd->f, data);
			switch (fd->f->size) {
			case 1: sv = (int8_t)v; break;
			case 2: sv = (int16_t)v; break;
			case 4: sv = (int32_t)v; break;
			default: sv = (long long)v; break;
			}
			lua_pushinteger(L, (lua_Integer)sv);
			break;
		}
		case FK_UNSIGNED:
			v = num(d, fd->f, data);
			if (v > (unsigned long long)LLONG_MAX)
				push_hex(L, v); /* as text records give it */
			else
				lua_pushinteger(L, (lua_Integer)v);
			break;
		case FK_POINTER:
			push_hex_kept(L, fd, lua_gettop(L) - 3, num(d, fd->f, data));
			break;
		}
		lua_rawset(L, -3);
	}
	dp_setkey(L, keys, DP_K_FIELDS);
	if (ei->pkt && !push_packet(L, d, ei, keys, data, size)) {
		lua_pop(L, 2); /* not a drop of the packets asked for */
		d->filtered++;
		return DP_DEC_SKIP;
	}
	lua_remove(L, -2); /* the event's cache */
	return DP_DEC_RECORD;
}
