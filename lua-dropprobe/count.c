/*
 * count.c - dropprobe.Counter: counting events in C, keyed by fields of
 * one event (and its stack), the way a kernel hist trigger counts, for
 * kernels without hist triggers and for saved traces. Each event is read
 * straight from the binary buffer into a C hash table: no Lua value per
 * event. A stack key hashes the raw address array (the stacktrace
 * trigger's ftrace:kernel_stack entry that follows the event on its CPU)
 * and is symbolized once per distinct stack, when rows are asked for.
 *
 * Packet keys (`packet.proto`, `packet.dport`, ...) count the drop
 * probe's events (dp.packet_probe): each event's `pkt` bytes are decoded
 * here with packet.c, as rec.packet is, and the key slots hold the
 * protocol and ports plus one (0: the packet has none) and the addresses
 * as the table's interned strings of their 4 or 16 bytes (a 128-bit
 * address does not fit a slot), turned into text when rows are asked for.
 *
 * The counter is a sink (sink.h) of the same inputs the records come
 * from: an instance's per-CPU buffers (rawbuf.c), read on poll(); a
 * trace.dat (datin.c), read whole on open. A stack is joined to its event
 * by the joiner's rule (dp_waits, join.h). A saved trace text is read
 * whole on open with the text parser (parse.c), its values and frames
 * interned as strings, its stacks joined the same way.
 */

/***
 * @submodule dropprobe.core
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event-parse.h>
#include <tracefs.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include "core.h"
#include "util.h"
#include "ctable.h"
#include "datin.h"
#include "format.h"
#include "instance.h"
#include "join.h"
#include "ksym.h"
#include "lines.h"
#include "packet.h"
#include "parse.h"
#include "rawbuf.h"
#include "sink.h"

#define DP_COUNTER_MT "dropprobe.Counter"
#define MAXK DP_CT_MAXK
#define MAXV DP_CT_MAXV
#define MAXFRAMES 128

enum { HOW_NUM, HOW_SYM, HOW_SYM_OFFSET,
       /* packet keys: fields of the packet the drop probe fetched */
       HOW_PKT_FAMILY, HOW_PKT_PROTO, HOW_PKT_SADDR, HOW_PKT_DADDR, HOW_PKT_SPORT, HOW_PKT_DPORT };

/* the packet keys by name, after "packet.", in HOW_PKT_* order */
static const char *const packet_keys[] = {"family", "proto", "saddr", "daddr", "sport", "dport", NULL};

/* an event's keys and values while it waits for its stack */
struct pend {
	uint64_t k[MAXK];
	uint64_t v[MAXV];
};

struct counter {
	struct dp_sink sink; /* first: what the inputs hand events to */
	int closed;
	struct dp_instance *inst; /* live source, or NULL */
	struct dp_rawbuf rb;
	struct dp_datin dat;      /* a trace.dat's, or none (dat.ninputs 0) */
	struct tep_handle *tep;
	struct dp_ksyms *syms; /* tep's symbols: its reader's or its file's */
	struct tep_event *ev;
	int event_id;
	int stack_key;
	struct tep_format_field *kf[MAXK], *vf[MAXV];
	int how[MAXK];
	char kname[MAXK][64], vname[MAXV][64];
	int stack_id;
	struct tep_format_field *stack_size, *stack_caller;
	int npkt; /* packet keys asked for */
	struct tep_format_field *pkt, *nh; /* the probe's bytes and network header offset */
	struct dp_ctable t; /* the counts, stacks and strings */
	struct dp_waits waits; /* per CPU: its slot in pend while it waits for a stack */
	struct pend *pend;     /* per CPU, for a stack key */
	int npend;
	/* a saved text: key values and frames are strings, interned */
	int text;
	char tname[128];
	long long lost, other, nostack;
	long long bad; /* a saved text's lines that are no trace line */
};

static struct counter *check_counter(lua_State *L, int idx)
{
	struct counter *c = luaL_checkudata(L, idx, DP_COUNTER_MT);
	if (c->closed)
		luaL_error(L, "attempt to use a closed counter");
	return c;
}

static uint64_t num(struct tep_format_field *f, void *data, int size)
{
	unsigned long long v = 0;
	if (f->offset + f->size > size)
		return 0;
	tep_read_number_field(f, data, &v);
	return v;
}

/* Room for cpu's waiting event: 0, or -1. */
static int pend_room(struct counter *c, int cpu)
{
	struct pend *np;
	if (dp_waits_room(&c->waits, cpu) < 0)
		return -1;
	if (c->npend < c->waits.n) {
		np = realloc(c->pend, sizeof(*np) * (size_t)c->waits.n);
		if (!np)
			return -1;
		c->pend = np;
		c->npend = c->waits.n;
	}
	return 0;
}

/* The event that waited in slot h is counted, with stack st (0: none came). */
static void count_waiting(struct counter *c, int h, uint32_t st)
{
	if (h < 0)
		return;
	if (!st)
		c->nostack++;
	dp_ctable_add(&c->t, c->pend[h].k, st, c->pend[h].v);
}

/* An event with keys k and values v: counted, or with a stack key, waiting
 * on its CPU for the stack that may follow (ending the wait before it). */
static void count_or_wait(struct counter *c, int cpu, const uint64_t *k, const uint64_t *v)
{
	if (!c->stack_key) {
		dp_ctable_add(&c->t, k, 0, v);
		return;
	}
	if (pend_room(c, cpu) < 0)
		return;
	count_waiting(c, dp_waits_put(&c->waits, cpu, cpu), 0);
	memcpy(c->pend[cpu].k, k, sizeof(c->pend[cpu].k));
	memcpy(c->pend[cpu].v, v, sizeof(c->pend[cpu].v));
}

/* No event waits for a stack any longer (a buffer or the input ended). */
static void flush_all(struct counter *c)
{
	for (int cpu = 0; cpu < c->waits.n; cpu++)
		count_waiting(c, dp_waits_end(&c->waits, cpu), 0);
}

/* The address of a packet as a key: its bytes interned (while the table
 * has room for new entries; a full one only finds those it has), 0 for
 * none; -1 for a new address the table has no room for. */
static int addr_key(struct counter *c, const struct dp_packet *p, const unsigned char *b, uint64_t *k)
{
	size_t n = p->family == 4 ? 4 : 16;
	if (c->t.n < c->t.max)
		*k = dp_ctable_intern(&c->t, (const char *)b, n);
	else if (!(*k = dp_ctable_find(&c->t, (const char *)b, n)))
		return -1;
	return 0;
}

/* The packet keys of a drop probe's event into k: the packet decoded from
 * its pkt bytes (see decode.c's rec.packet); a key the packet has not
 * (no IP header, no ports) is 0. 0, or -1 (see addr_key). */
static int packet_keys_of(struct counter *c, void *data, int size, uint64_t *k)
{
	struct dp_packet p;
	int off = c->pkt->offset, len = c->pkt->size, have;
	if (c->pkt->flags & TEP_FIELD_IS_DYNAMIC) {
		unsigned int dl = (unsigned int)num(c->pkt, data, size);
		off = (int)(dl & 0xffff);
		len = (int)(dl >> 16);
		if (c->pkt->flags & TEP_FIELD_IS_RELATIVE)
			off += c->pkt->offset + c->pkt->size;
	}
	if (off < 0 || len < 0 || off + len > size || c->nh->offset + c->nh->size > size)
		off = len = 0; /* nothing decodes from no bytes */
	have = dp_packet_parse((const unsigned char *)data + off, (size_t)len,
			       (size_t)num(c->nh, data, size), &p);
	for (int i = 0; i < c->t.nk; i++) {
		switch (c->how[i]) {
		case HOW_PKT_FAMILY:
			k[i] = have ? (uint64_t)p.family : 0;
			break;
		case HOW_PKT_PROTO:
			k[i] = have ? (uint64_t)p.proto + 1 : 0;
			break;
		case HOW_PKT_SPORT:
			k[i] = have && p.sport >= 0 ? (uint64_t)p.sport + 1 : 0;
			break;
		case HOW_PKT_DPORT:
			k[i] = have && p.dport >= 0 ? (uint64_t)p.dport + 1 : 0;
			break;
		case HOW_PKT_SADDR:
		case HOW_PKT_DADDR:
			k[i] = 0;
			if (have && addr_key(c, &p, c->how[i] == HOW_PKT_SADDR ? p.sbin : p.dbin, &k[i]) < 0)
				return -1;
			break;
		default:
			break;
		}
	}
	return 0;
}

/* A packet key's value in a row (0: the packet had none, nothing pushed). */
static int push_packet_key(lua_State *L, struct counter *c, int how, uint64_t v)
{
	const char *name;
	char buf[INET6_ADDRSTRLEN];
	if (!v)
		return 0;
	switch (how) {
	case HOW_PKT_PROTO:
		if ((name = dp_packet_proto_name((int)v - 1)))
			lua_pushstring(L, name);
		else
			lua_pushinteger(L, (lua_Integer)v - 1);
		return 1;
	case HOW_PKT_SADDR:
	case HOW_PKT_DADDR:
		if (v > c->t.nstr || !inet_ntop(c->t.slen[v - 1] == 4 ? AF_INET : AF_INET6, c->t.str[v - 1],
						buf, sizeof(buf)))
			return 0;
		lua_pushstring(L, buf);
		return 1;
	case HOW_PKT_FAMILY:
		lua_pushinteger(L, (lua_Integer)v);
		return 1;
	default: /* ports */
		lua_pushinteger(L, (lua_Integer)v - 1);
		return 1;
	}
}

/* One event from an input (the counter as a sink). */
static int count_event(struct dp_sink *sink, int cpu, void *data, int size, unsigned long long ts)
{
	struct counter *c = (struct counter *)sink;
	struct tep_record rec;
	uint64_t k[MAXK] = {0}, v[MAXV] = {0};
	int id;
	(void)ts;
	memset(&rec, 0, sizeof(rec));
	rec.data = data;
	rec.size = size;
	if (size < 2)
		return 0;
	id = tep_data_type(c->tep, &rec);
	if (c->stack_key && id == c->stack_id && c->stack_caller) {
		uint64_t a[MAXFRAMES];
		long long n;
		int off = c->stack_caller->offset, m = 0, h = dp_waits_take(&c->waits, cpu);
		if (h < 0)
			return 0; /* a stack of no counted event (an orphan) */
		n = (long long)num(c->stack_size, data, size);
		if (n < 0 || off + n * 8 > size)
			n = (size - off) / 8;
		for (long long i = 0; i < n && m < MAXFRAMES; i++) {
			memcpy(&a[m], (char *)data + off + i * 8, 8);
			if (!a[m])
				break;
			m++;
		}
		count_waiting(c, h, dp_ctable_stack(&c->t, a, m));
		return 0;
	}
	if (id != c->event_id) {
		c->other++;
		/* the CPU moved on: no stack came */
		count_waiting(c, dp_waits_end(&c->waits, cpu), 0);
		return 0;
	}
	if (c->npkt && packet_keys_of(c, data, size, k) < 0) {
		/* a new address and a full table: a new key, dropped as
		 * dp_ctable_add drops one (the strings stay bounded) */
		c->t.hits++;
		c->t.dropped++;
		count_waiting(c, dp_waits_end(&c->waits, cpu), 0);
		return 0;
	}
	for (int i = 0; i < c->t.nk; i++)
		if (c->how[i] < HOW_PKT_FAMILY)
			k[i] = num(c->kf[i], data, size);
	for (int i = 0; i < c->t.nv; i++)
		v[i] = num(c->vf[i], data, size);
	count_or_wait(c, cpu, k, v);
	return 0;
}

static void count_lost(struct dp_sink *sink, int cpu, long long n)
{
	(void)cpu;
	if (n > 0) /* (< 0: a loss of unknown size) */
		((struct counter *)sink)->lost += n;
}

static void count_boundary(struct dp_sink *sink)
{
	flush_all((struct counter *)sink);
}

/* Read what the live buffers have (waiting up to ms); events seen, -1 on a signal. */
static long long poll_live(struct counter *c, int ms)
{
	long long before = c->t.hits + c->other;
	if (dp_rawbuf_feed(&c->rb, ms, &c->sink) < 0)
		return -1;
	return c->t.hits + c->other - before;
}

/***
 * Read what the buffers have (live counters), waiting up to `ms` when
 * nothing.
 * @function Counter:poll
 * @tparam[opt=0] integer ms
 * @treturn integer|nil events read, or nil and "interrupted"
 */
static int counter_poll(lua_State *L)
{
	struct counter *c = check_counter(L, 1);
	int ms = (int)luaL_optinteger(L, 2, 0);
	long long n;
	if (!c->inst) {
		lua_pushinteger(L, 0);
		return 1;
	}
	n = poll_live(c, ms < 0 ? 0 : ms);
	if (n < 0 || dp_signal_caught) {
		luaL_pushfail(L);
		lua_pushliteral(L, "interrupted");
		return 2;
	}
	lua_pushinteger(L, n);
	return 1;
}

static void push_sym(lua_State *L, struct counter *c, uint64_t a, int offset)
{
	char buf[512];
	dp_ksym_format(c->syms, a, offset, buf, sizeof(buf));
	lua_pushstring(L, buf);
}

/***
 * The counts: rows (keys by field name, a reason by the format's name,
 * packet keys by the packet's field as `rec.packet` names it: `proto` a
 * name, `saddr`/`daddr` text, `sport`/`dport`/`family` numbers, nil where
 * the packet has none; `stack` = frames, `hitcount`, summed values) and totals (`hits`,
 * `entries`, `dropped` for a full table, `lost` ring-buffer events,
 * `without_stack`, `orphan_stacks`: stacks that came after no counted event,
 * `bad_lines`: a saved text's lines that are no trace line, as a reader's
 * `stats()` counts them, `mapped`: the CPUs whose buffer is read in place).
 * @function Counter:rows
 * @treturn table rows
 * @treturn table totals
 */
static int counter_rows(lua_State *L)
{
	struct counter *c = check_counter(L, 1);
	int r = 0;
	/* what is there now: a pass reads one page per CPU, so pass until the
	 * buffers are empty (at most 4096 passes: a storm that never pauses
	 * still gets its rows) */
	for (int pass = 0; c->inst && pass < 4096; pass++)
		if (poll_live(c, 0) <= 0)
			break;
	flush_all(c);
	if (c->ev)
		dp_push_symbols(L, c->ev); /* a number a key field's table names */
	else
		lua_newtable(L);
	lua_createtable(L, (int)c->t.n, 0);
	lua_createtable(L, 0, (int)c->t.nstacks); /* stack id -> frames, made once */
	for (size_t i = 0; i < c->t.cap; i++) {
		struct dp_centry *e = &c->t.tab[i];
		if (!e->used)
			continue;
		lua_createtable(L, 0, c->t.nk + c->t.nv + 2);
		for (int k = 0; k < c->t.nk; k++) {
			if (c->how[k] >= HOW_PKT_FAMILY) {
				if (!push_packet_key(L, c, c->how[k], e->k[k]))
					continue; /* no such header: the key is nil */
			} else if (c->text) {
				size_t id = (size_t)e->k[k];
				long long x;
				struct dp_span sp = {id ? c->t.str[id - 1] : "", id ? c->t.slen[id - 1] : 0};
				if (!id)
					lua_pushnil(L); /* the line had no such field */
				else if (dp_span_integer(sp, &x))
					lua_pushinteger(L, x); /* a number as raw records give it */
				else
					lua_pushlstring(L, sp.p, sp.n);
			} else if (c->how[k] == HOW_NUM) {
				int named = 0;
				if (lua_getfield(L, -4, c->kname[k]) == LUA_TTABLE) {
					named = lua_rawgeti(L, -1, (lua_Integer)e->k[k]) == LUA_TSTRING;
					lua_remove(L, -2); /* the table: its name, or nil */
				}
				if (!named) {
					lua_pop(L, 1);
					if (e->k[k] > (uint64_t)INT64_MAX)
						lua_pushnumber(L, (lua_Number)e->k[k]);
					else
						lua_pushinteger(L, (lua_Integer)e->k[k]);
				}
			} else {
				push_sym(L, c, e->k[k], c->how[k] == HOW_SYM_OFFSET);
			}
			lua_setfield(L, -2, c->kname[k]);
		}
		if (c->stack_key) {
			if (e->stack) {
				if (lua_rawgeti(L, -2, e->stack) == LUA_TNIL) {
					struct dp_cstack *s = &c->t.stacks[e->stack - 1];
					lua_pop(L, 1);
					lua_createtable(L, s->n, 0);
					for (int f = 0; f < s->n; f++) {
						if (c->text && s->addr[f])
							lua_pushlstring(L, c->t.str[s->addr[f] - 1],
									c->t.slen[s->addr[f] - 1]);
						else
							push_sym(L, c, s->addr[f], 1);
						lua_rawseti(L, -2, f + 1);
					}
					lua_pushvalue(L, -1);
					lua_rawseti(L, -4, e->stack);
				}
				lua_setfield(L, -2, "stack");
			}
		}
		lua_pushinteger(L, (lua_Integer)e->hits);
		lua_setfield(L, -2, "hitcount");
		for (int v = 0; v < c->t.nv; v++) {
			lua_pushinteger(L, (lua_Integer)e->sum[v]);
			lua_setfield(L, -2, c->vname[v]);
		}
		lua_rawseti(L, -3, ++r);
	}
	lua_pop(L, 1);
	lua_remove(L, -2); /* the symbol tables */
	lua_createtable(L, 0, 8);
	lua_pushinteger(L, c->t.hits);
	lua_setfield(L, -2, "hits");
	lua_pushinteger(L, (lua_Integer)c->t.n);
	lua_setfield(L, -2, "entries");
	lua_pushinteger(L, c->t.dropped);
	lua_setfield(L, -2, "dropped");
	lua_pushinteger(L, c->lost);
	lua_setfield(L, -2, "lost");
	lua_pushinteger(L, c->nostack);
	lua_setfield(L, -2, "without_stack");
	lua_pushinteger(L, c->waits.orphans);
	lua_setfield(L, -2, "orphan_stacks");
	lua_pushinteger(L, c->bad);
	lua_setfield(L, -2, "bad_lines");
	lua_pushinteger(L, c->rb.mapped);
	lua_setfield(L, -2, "mapped");
	return 2;
}

static void counter_release(struct counter *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	if (c->inst)
		dp_rawbuf_close(&c->rb); /* and its formats */
	dp_datin_close(&c->dat); /* and the file's formats */
	c->tep = NULL;
	dp_ctable_free(&c->t);
	dp_waits_free(&c->waits);
	free(c->pend);
	c->pend = NULL;
}

/***
 * Close it; idempotent; also `__close` and `__gc`.
 * @function Counter:close
 */
static int counter_close(lua_State *L)
{
	counter_release(luaL_checkudata(L, 1, DP_COUNTER_MT));
	return 0;
}

/***
 * The file descriptor to poll for a live counter (CPU 0's buffer).
 * @function Counter:fd
 * @treturn integer the descriptor, or -1 for a counter over a file
 */
static int counter_fd(lua_State *L)
{
	struct counter *c = check_counter(L, 1);
	lua_pushinteger(L, c->inst && c->rb.ncpu ? c->rb.fds[0] : -1);
	return 1;
}

static int counter_tostring(lua_State *L)
{
	struct counter *c = luaL_checkudata(L, 1, DP_COUNTER_MT);
	lua_pushfstring(L, DP_COUNTER_MT " (%s, %I hits, %I entries)",
			c->closed ? "closed" : c->inst ? "live" : c->text ? "text" : "trace.dat", (lua_Integer)c->t.hits,
			(lua_Integer)c->t.n);
	return 1;
}

/* What to count, from the option table at opts: the key names and their
 * modifiers, the summed values, the table size. The one reading of a key
 * spec, for every source: a live or trace.dat counter then finds the
 * fields in the event's format, a text counter matches printed labels. */
static const char *parse_keys(lua_State *L, struct counter *c, int opts)
{
	static char msg[200];
	const char *fail = NULL;
	lua_Integer size = dp_opt_integer(L, opts, "size", 2048);
	if (size < 1 || size > 1048576)
		return "size: a whole number of entries, 1 to 1048576";
	dp_ctable_init(&c->t, 0, 0, (size_t)size);
	if (lua_getfield(L, opts, "keys") != LUA_TTABLE) {
		lua_pop(L, 1);
		return "keys: give a list of fields, e.g. { \"reason\", \"location.sym\" }";
	}
	for (int i = 1; !fail; i++) {
		const char *k, *dot;
		if (lua_rawgeti(L, -1, i) == LUA_TNIL) {
			lua_pop(L, 1);
			break;
		}
		if (lua_type(L, -1) != LUA_TSTRING) {
			snprintf(msg, sizeof(msg), "keys[%d]: a field name is a string, got %s", i,
				 luaL_typename(L, -1));
			fail = msg;
		} else if (strcmp((k = lua_tostring(L, -1)), "stacktrace") == 0) {
			c->stack_key = 1;
		} else if (c->t.nk == MAXK) {
			snprintf(msg, sizeof(msg), "at most %d key fields (and stacktrace)", MAXK);
			fail = msg;
		} else if (strncmp(k, "packet.", 7) == 0) {
			int j = 0;
			while (packet_keys[j] && strcmp(k + 7, packet_keys[j]) != 0)
				j++;
			if (!packet_keys[j]) {
				snprintf(msg, sizeof(msg), "key '%.80s': the packet keys are packet.family, "
					 "packet.proto, packet.saddr, packet.daddr, packet.sport and packet.dport", k);
				fail = msg;
			} else {
				/* the row names it as rec.packet does: proto, dport, ... */
				c->how[c->t.nk] = HOW_PKT_FAMILY + j;
				snprintf(c->kname[c->t.nk], sizeof(c->kname[0]), "%s", packet_keys[j]);
				c->t.nk++;
				c->npkt++;
			}
		} else {
			dot = strchr(k, '.');
			c->how[c->t.nk] = !dot ? HOW_NUM : strcmp(dot, ".sym") == 0 ? HOW_SYM
					: strcmp(dot, ".sym-offset") == 0 ? HOW_SYM_OFFSET : -1;
			if (c->how[c->t.nk] < 0) {
				snprintf(msg, sizeof(msg), "key '%s': the modifiers are .sym and .sym-offset", k);
				fail = msg;
			} else if ((dot ? (size_t)(dot - k) : strlen(k)) >= sizeof(c->kname[0]) || dot == k) {
				snprintf(msg, sizeof(msg), "key '%.80s': not a field name", k);
				fail = msg;
			} else {
				snprintf(c->kname[c->t.nk], sizeof(c->kname[0]), "%.*s",
					 dot ? (int)(dot - k) : (int)strlen(k), k);
				c->t.nk++;
			}
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	if (fail)
		return fail;
	if (!c->t.nk && !c->stack_key)
		return "keys: at least one field or stacktrace";
	if (lua_getfield(L, opts, "values") == LUA_TTABLE) {
		for (int i = 1; !fail; i++) {
			const char *v;
			if (lua_rawgeti(L, -1, i) == LUA_TNIL) {
				lua_pop(L, 1);
				break;
			}
			v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
			if (!v) {
				snprintf(msg, sizeof(msg), "values[%d]: a field name is a string, got %s", i,
					 luaL_typename(L, -1));
				fail = msg;
			} else if (strcmp(v, "hitcount") == 0) {
				/* every entry counts its hits */
			} else if (c->t.nv == MAXV) {
				fail = "at most 4 summed values";
			} else if (strlen(v) >= sizeof(c->vname[0])) {
				snprintf(msg, sizeof(msg), "value '%.80s': not a field name", v);
				fail = msg;
			} else {
				snprintf(c->vname[c->t.nv++], sizeof(c->vname[0]), "%s", v);
			}
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	return fail;
}

/* The fields of the keys and values in the event's format, with c->tep
 * loaded (a live or trace.dat counter). */
static const char *setup_keys(lua_State *L, struct counter *c, int opts)
{
	const char *sys = dp_opt_string(L, opts, "system", "skb");
	const char *name = dp_opt_string(L, opts, "event", "kfree_skb");
	struct tep_event *ev = tep_find_event_by_name(c->tep, sys, name), *kst;
	const char *fail = parse_keys(L, c, opts);
	static char msg[300];
	if (fail)
		return fail;
	if (!ev) {
		snprintf(msg, sizeof(msg), "no format for %s:%s", sys, name);
		return msg;
	}
	c->event_id = ev->id;
	c->ev = ev;
	kst = tep_find_event_by_name(c->tep, "ftrace", "kernel_stack");
	c->stack_id = kst ? kst->id : -1;
	if (kst) {
		c->stack_size = tep_find_field(kst, "size");
		c->stack_caller = tep_find_field(kst, "caller");
	}
	if (c->stack_key && !c->stack_caller)
		return "this trace has no ftrace:kernel_stack format for a stack key";
	if (c->npkt) {
		c->pkt = tep_find_field(ev, "pkt");
		c->nh = tep_find_field(ev, "nh");
		if (!c->pkt || !c->nh || !(c->pkt->flags & TEP_FIELD_IS_ARRAY) || (c->nh->flags & TEP_FIELD_IS_ARRAY)) {
			snprintf(msg, sizeof(msg), "%s:%s carries no packet (no pkt and nh fields): packet keys "
				 "count the drop probe's events (dp.packet_probe, a kernel with kprobes)", sys, name);
			return msg;
		}
	}
	for (int i = 0; i < c->t.nk + c->t.nv; i++) {
		const char *f = i < c->t.nk ? c->kname[i] : c->vname[i - c->t.nk];
		struct tep_format_field *tf;
		if (i < c->t.nk && c->how[i] >= HOW_PKT_FAMILY)
			continue; /* decoded from pkt */
		tf = tep_find_any_field(ev, f);
		if (!tf || (tf->flags & (TEP_FIELD_IS_ARRAY | TEP_FIELD_IS_DYNAMIC))) {
			snprintf(msg, sizeof(msg), "%s:%s has no numeric field '%s'", sys, name, f);
			return msg;
		}
		if (i < c->t.nk)
			c->kf[i] = tf;
		else
			c->vf[i - c->t.nk] = tf;
	}
	return NULL;
}

static struct counter *new_counter(lua_State *L)
{
	struct counter *c = lua_newuserdatauv(L, sizeof(*c), 1);
	memset(c, 0, sizeof(*c));
	c->sink.event = count_event;
	c->sink.lost = count_lost;
	c->sink.boundary = count_boundary;
	luaL_setmetatable(L, DP_COUNTER_MT);
	return c;
}

static int fail_counter(lua_State *L, struct counter *c, const char *what, const char *why)
{
	lua_pushfstring(L, "%s: %s", what, why);
	counter_release(c);
	return lua_error(L);
}

static const char *const count_opts[] = {"system", "event", "keys", "values", "size",
					 "systems", "map", NULL};

/***
 * A Counter over an instance's per-CPU buffers (see `Counter`): the event,
 * and with a `stacktrace` key its stack trigger, must be set up in the
 * instance; `poll` reads. Keys are the event's fields (`reason`,
 * `location.sym`), `stacktrace`, and for the drop probe's events
 * (`dp.packet_probe`: its `pkt` bytes and `nh` offset) fields of the
 * packet decoded in C: `packet.family`, `packet.proto`, `packet.saddr`,
 * `packet.daddr`, `packet.sport`, `packet.dport`.
 * @function counter
 * @param inst an Instance
 * @tparam table spec `system`, `event`, `keys`, `values`, `size`, `systems`,
 *   `map` (false: copy every page out with read() even where the kernel
 *   lets the buffers be mapped)
 * @return a Counter
 */
static int counter_new(lua_State *L)
{
	struct dp_instance *in = dp_check_instance(L, 1);
	const char *systems[64], *fail;
	struct counter *c;
	int n = 0;
	luaL_checktype(L, 2, LUA_TTABLE);
	dp_check_fields(L, 2, count_opts);
	if (lua_getfield(L, 2, "systems") == LUA_TTABLE)
		for (int i = 1; n < 62 && lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
			systems[n++] = lua_tostring(L, -1);
			lua_pop(L, 1);
		}
	lua_settop(L, 2);
	systems[n] = NULL;
	c = new_counter(L);
	c->inst = in;
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 1); /* the instance lives as long as its counter */
	errno = 0;
	fail = dp_rawbuf_open(&c->rb, in->ti, systems, dp_tracing_dir_arg(),
			      dp_opt_boolean(L, 2, "map", 1));
	if (fail)
		return fail_counter(L, c, "counter", errno ? strerror(errno) : fail);
	c->tep = c->rb.tep;
	c->syms = &c->rb.syms;
	fail = setup_keys(L, c, 2);
	if (fail)
		return fail_counter(L, c, "counter", fail);
	dp_instance_adopt(L, 1, -1, DP_CHILD_READER, NULL);
	return 1;
}

/***
 * A Counter over a whole trace.dat (every buffer in the file), counted on
 * open.
 * @function count_dat
 * @tparam string path
 * @tparam table spec `system`, `event`, `keys`, `values`, `size`
 * @return a Counter
 */
static int count_dat(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	const char *fail;
	struct counter *c;
	luaL_checktype(L, 2, LUA_TTABLE);
	dp_check_fields(L, 2, count_opts);
	c = new_counter(L);
	fail = dp_datin_open(&c->dat, path);
	if (fail)
		return fail_counter(L, c, path, fail);
	c->tep = dp_datin_tep(&c->dat);
	c->syms = &c->dat.syms;
	fail = setup_keys(L, c, 2);
	if (fail)
		return fail_counter(L, c, path, fail);
	while (dp_datin_feed(&c->dat, &c->sink) > 0)
		;
	flush_all(c);
	return 1;
}

/* the state of a text being counted: the stack being collected */
struct tstate {
	struct counter *c;
	int cpu;   /* of the open stack, -1 none */
	int n;
	uint64_t frames[MAXFRAMES];
};

/* The stack being collected (if any) counted with its event. */
static void text_stack_end(struct counter *c, struct tstate *t)
{
	if (t->cpu >= 0)
		count_waiting(c, t->cpu, dp_ctable_stack(&c->t, t->frames, t->n));
	t->cpu = -1;
}

static void text_line(void *ctx, const char *p, size_t n)
{
	struct tstate *t = ctx;
	struct counter *c = t->c;
	struct dp_line ln;
	enum dp_line_kind k = dp_parse_line(p, n, &ln);
	uint64_t key[MAXK] = {0}, val[MAXV] = {0};
	if (k == DP_LINE_FRAME) {
		if (t->cpu >= 0 && t->n < MAXFRAMES)
			t->frames[t->n++] = dp_ctable_intern(&c->t, ln.frame.p, ln.frame.n);
		return;
	}
	text_stack_end(c, t);
	if (k == DP_LINE_BAD)
		c->bad++;
	if (k == DP_LINE_LOST && ln.lost > 0)
		c->lost += ln.lost;
	if (k == DP_LINE_STACK) {
		/* its frames follow: collected for the event waiting on its CPU */
		if (c->stack_key && (t->cpu = dp_waits_take(&c->waits, ln.cpu)) >= 0)
			t->n = 0;
		return;
	}
	if (k != DP_LINE_EVENT)
		return;
	if (ln.name.n != strlen(c->tname) || memcmp(ln.name.p, c->tname, ln.name.n) != 0) {
		c->other++;
		count_waiting(c, dp_waits_end(&c->waits, ln.cpu), 0);
		return;
	}
	{
		struct dp_span kk, vv;
		size_t pos = 0;
		while (dp_payload_next(ln.payload, &pos, &kk, &vv)) {
			for (int i = 0; i < c->t.nk; i++) {
				if (kk.n != strlen(c->kname[i]) || memcmp(kk.p, c->kname[i], kk.n) != 0)
					continue;
				if (c->how[i] == HOW_SYM) { /* the function, without +0xoff/0xsize */
					const char *plus = memchr(vv.p, '+', vv.n);
					if (plus)
						vv.n = (size_t)(plus - vv.p);
				}
				key[i] = dp_ctable_intern(&c->t, vv.p, vv.n);
			}
			for (int i = 0; i < c->t.nv; i++) {
				long long x;
				if (kk.n == strlen(c->vname[i]) && memcmp(kk.p, c->vname[i], kk.n) == 0 &&
				    dp_span_integer(vv, &x))
					val[i] = (uint64_t)x;
			}
		}
	}
	count_or_wait(c, ln.cpu, key, val);
}

/* Keys of a text counter: fields by their printed labels. */
static const char *text_keys(lua_State *L, struct counter *c, int opts)
{
	const char *fail;
	snprintf(c->tname, sizeof(c->tname), "%s", dp_opt_string(L, opts, "event", "kfree_skb"));
	fail = parse_keys(L, c, opts);
	if (!fail && c->npkt)
		fail = "packet keys need the drop probe's raw records (its pkt bytes): a saved text has none";
	return fail;
}

/***
 * A Counter over a saved trace text, counted in C on open: the keys are the
 * printed labels (reason names, symbols as printed).
 * @function count_text
 * @tparam string path
 * @tparam table spec `event`, `keys`, `values`, `size`
 * @return a Counter
 */
static int count_text(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	const char *fail;
	struct counter *c;
	struct tstate t = {.cpu = -1};
	struct dp_lines b;
	ssize_t r;
	int fd, e;
	luaL_checktype(L, 2, LUA_TTABLE);
	dp_check_fields(L, 2, count_opts);
	c = new_counter(L);
	c->text = 1;
	t.c = c;
	fail = text_keys(L, c, 2);
	if (fail)
		return fail_counter(L, c, path, fail);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_counter(L, c, path, strerror(errno));
	if (dp_lines_init(&b, DP_LINES_BUF, 0) < 0) {
		close(fd);
		return fail_counter(L, c, path, "out of memory");
	}
	while ((r = dp_lines_read(&b, fd)) > 0)
		dp_lines_each(&b, 0, text_line, &t);
	e = r < 0 ? errno : 0;
	dp_lines_each(&b, 1, text_line, &t);
	text_stack_end(c, &t);
	c->bad += b.overlong;
	dp_lines_free(&b);
	close(fd);
	flush_all(c);
	if (e)
		return fail_counter(L, c, path, strerror(e));
	return 1;
}

static const luaL_Reg counter_methods[] = {
	{"poll", counter_poll},
	{"rows", counter_rows},
	{"fd", counter_fd},
	{"close", counter_close},
	{NULL, NULL},
};

static const luaL_Reg counter_meta[] = {
	{"__gc", counter_close},
	{"__close", counter_close},
	{"__tostring", counter_tostring},
	{NULL, NULL},
};

void dp_count_open(lua_State *L)
{
	luaL_newmetatable(L, DP_COUNTER_MT);
	luaL_setfuncs(L, counter_meta, 0);
	luaL_newlib(L, counter_methods);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, -3, "Counter");
	lua_pop(L, 1);
	lua_pushcfunction(L, counter_new);
	lua_setfield(L, -2, "counter");
	lua_pushcfunction(L, count_dat);
	lua_setfield(L, -2, "count_dat");
	lua_pushcfunction(L, count_text);
	lua_setfield(L, -2, "count_text");
}
