/*
 * src_path.c - the path of each packet: a source of the Pipe whose records
 * are paths. It reads an instance's per-CPU binary buffers (rawbuf.c) in
 * time order and follows each skb by its address through the step events
 * (a kprobe per kernel function that takes the skb, fetching it, or the
 * tracepoints that carry skbaddr) in a bounded table of live skbs, in C:
 * no Lua value per step. When the skb is freed (skb:kfree_skb, and
 * skb:consume_skb for delivered packets) its path becomes one record: the
 * free event decoded by the decoder (decode.c: reason named, location
 * symbolized), with `steps` (`{ at, ts, cpu }` in time order, the free
 * itself last) and `packet`, handed to the joiner (join.c), which gives it
 * its stack. A free without a tracepoint (a kprobe at kfree_skbmem, given
 * as an end event) forgets the skb, so that an address reused after a free
 * starts a new path. A clone (a kprobe and a kretprobe on skb_clone) starts
 * as a copy of its parent's path.
 *
 * The packet condition (the decoder's port, hosts and tcpdump expression)
 * is decided once per skb, at the first step whose bytes hold an IP header:
 * an unmatched packet costs one table entry and no steps. The drop
 * condition (the drop filter with reason numbers) is run here by
 * libtraceevent's filter on each kfree_skb, so that every free ends its
 * path whether or not it counts as a drop.
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

#include "core.h"
#include "util.h"
#include "decode.h"
#include "instance.h"
#include "join.h"
#include "packet.h"
#include "rawbuf.h"
#include "sink.h"
#include "record.h"
#include "source.h"

enum kind { K_UNKNOWN = 0, K_OTHER, K_STEP, K_DROP, K_CONSUME, K_END, K_STACK, K_CLONE, K_CLONED };

/* skb_clone calls under way: the parent at the entry, by task, until the
 * return probe gives the clone (LIFO per task: a softirq's clone nests
 * inside the task it interrupted) */
#define DP_PENDING 64
struct pending {
	int pid, cpu; /* pid 0 is every CPU's idle task: matched with its CPU */
	uint64_t parent;
};

struct evkind {
	enum kind kind;
	struct tep_format_field *skb; /* skbaddr (tracepoints) or skb (probes) */
	struct tep_format_field *pkt, *nh;
};

struct step {
	unsigned long long ts;
	int id; /* event id: its label in own.labels */
	int cpu;
};

struct track {
	uint64_t skb;
	int next;           /* hash chain, -1 ends */
	int prev_l, next_l; /* least recently used list */
	int used;
	int match;          /* -1 undecided, 0 not wanted, 1 wanted */
	int have;           /* pkt holds the packet's headers */
	struct dp_packet pkt;
	int nsteps, cap;
	long long cut;      /* steps beyond max_steps */
	struct step *steps;
};

struct src_path {
	struct dp_instance *inst;
	struct dp_rawbuf rb;
	struct dp_decoder dec;
	struct evkind *kinds;
	int nkinds;
	struct tep_event_filter *drop_filter; /* NULL: every kfree_skb is a drop */
	int all;                              /* also the paths of delivered packets */
	int cond;                             /* a packet condition is set */
	/* the table of live skbs */
	struct track *t;
	int limit, max_steps;
	int *buckets, nbuckets;
	int free_head, lru_head, lru_tail, live;
	/* per CPU: the last event there became a drop's record, so the stack
	 * that follows is its (a filter in front of the joiner) */
	struct dp_waits emitted;
	struct pending pend[DP_PENDING];
	int npend;
	/* counts */
	long long paths, delivered, evicted, unmatched, undecided, left_out, nopath, quiet,
		cut_steps, steps, clones, clones_unpaired;
};

static uint64_t rd(struct tep_format_field *f, void *data, int size)
{
	unsigned long long v = 0;
	if (!f || f->offset + f->size > size)
		return 0;
	tep_read_number_field(f, data, &v);
	return v;
}

static unsigned bucket_of(const struct src_path *s, uint64_t skb)
{
	uint64_t h = skb * 0x9e3779b97f4a7c15ULL;
	return (unsigned)(h >> 32) & (unsigned)(s->nbuckets - 1);
}

static int find(struct src_path *s, uint64_t skb)
{
	for (int i = s->buckets[bucket_of(s, skb)]; i >= 0; i = s->t[i].next)
		if (s->t[i].skb == skb)
			return i;
	return -1;
}

static void lru_unlink(struct src_path *s, int i)
{
	struct track *e = &s->t[i];
	if (e->prev_l >= 0)
		s->t[e->prev_l].next_l = e->next_l;
	else
		s->lru_head = e->next_l;
	if (e->next_l >= 0)
		s->t[e->next_l].prev_l = e->prev_l;
	else
		s->lru_tail = e->prev_l;
	e->prev_l = e->next_l = -1;
}

/* most recently used at the tail */
static void lru_push(struct src_path *s, int i)
{
	struct track *e = &s->t[i];
	e->prev_l = s->lru_tail;
	e->next_l = -1;
	if (s->lru_tail >= 0)
		s->t[s->lru_tail].next_l = i;
	else
		s->lru_head = i;
	s->lru_tail = i;
}

static void forget(struct src_path *s, int i)
{
	struct track *e = &s->t[i];
	int *pp = &s->buckets[bucket_of(s, e->skb)];
	while (*pp >= 0 && *pp != i)
		pp = &s->t[*pp].next;
	if (*pp == i)
		*pp = e->next;
	lru_unlink(s, i);
	e->used = 0;
	e->nsteps = 0;
	e->next = s->free_head;
	s->free_head = i;
	s->live--;
}

/* A new entry for skb (the least recently used one evicted when full). */
static int track_new(struct src_path *s, uint64_t skb)
{
	int i;
	unsigned b;
	if (s->free_head < 0) {
		forget(s, s->lru_head);
		s->evicted++;
	}
	i = s->free_head;
	s->free_head = s->t[i].next;
	b = bucket_of(s, skb);
	s->t[i].skb = skb;
	s->t[i].used = 1;
	s->t[i].match = -1;
	s->t[i].have = 0;
	s->t[i].nsteps = 0;
	s->t[i].cut = 0;
	s->t[i].next = s->buckets[b];
	s->buckets[b] = i;
	lru_push(s, i);
	s->live++;
	return i;
}

static void add_step(struct src_path *s, struct track *e, int id, int cpu, unsigned long long ts)
{
	if (e->nsteps >= s->max_steps) {
		e->cut++;
		s->cut_steps++;
		return;
	}
	if (e->nsteps == e->cap) {
		int n = e->cap ? e->cap * 2 : 16;
		struct step *ns;
		if (n > s->max_steps)
			n = s->max_steps;
		ns = realloc(e->steps, sizeof(*ns) * (size_t)n);
		if (!ns) {
			e->cut++;
			s->cut_steps++;
			return;
		}
		e->steps = ns;
		e->cap = n;
	}
	e->steps[e->nsteps].ts = ts;
	e->steps[e->nsteps].id = id;
	e->steps[e->nsteps].cpu = cpu;
	e->nsteps++;
	s->steps++;
}

/* What an event is to the tracker, by its id (own.kinds: id -> "step",
 * "drop", "consume", "end", "clone", "cloned"; the rest is not followed). */
static struct evkind *kind_of(lua_State *L, struct src_path *s, int own, int id)
{
	struct tep_event *ev;
	struct evkind *k;
	if (id < 0 || id > (1 << 20))
		return NULL;
	if (id >= s->nkinds) {
		int n = s->nkinds ? s->nkinds : 64;
		struct evkind *nk;
		while (n <= id)
			n *= 2;
		nk = realloc(s->kinds, sizeof(*nk) * (size_t)n);
		if (!nk)
			luaL_error(L, "out of memory");
		memset(nk + s->nkinds, 0, sizeof(*nk) * (size_t)(n - s->nkinds));
		s->kinds = nk;
		s->nkinds = n;
	}
	k = &s->kinds[id];
	if (k->kind != K_UNKNOWN)
		return k;
	k->kind = K_OTHER;
	if (id == s->dec.stack_id) {
		k->kind = K_STACK;
		return k;
	}
	ev = tep_find_event(s->rb.tep, id);
	if (!ev)
		return k;
	/* its label by id (own.ids), for the steps of the paths made */
	lua_getfield(L, own, "ids");
	lua_getfield(L, own, "labels");
	lua_pushfstring(L, "%s:%s", ev->system, ev->name);
	if (lua_gettable(L, -2) != LUA_TSTRING) {
		lua_pop(L, 1);
		lua_pushfstring(L, "%s:%s", ev->system, ev->name);
	}
	lua_rawseti(L, -3, id);
	lua_pop(L, 2);
	lua_getfield(L, own, "kinds");
	lua_pushfstring(L, "%s:%s", ev->system, ev->name);
	if (lua_gettable(L, -2) == LUA_TSTRING) {
		const char *what = lua_tostring(L, -1);
		k->skb = tep_find_field(ev, "skbaddr");
		if (!k->skb)
			k->skb = tep_find_field(ev, "skb");
		if (k->skb) {
			k->kind = strcmp(what, "drop") == 0      ? K_DROP
				  : strcmp(what, "consume") == 0 ? K_CONSUME
				  : strcmp(what, "end") == 0     ? K_END
				  : strcmp(what, "clone") == 0   ? K_CLONE
				  : strcmp(what, "cloned") == 0  ? K_CLONED
								 : K_STEP;
			k->pkt = tep_find_field(ev, "pkt");
			k->nh = tep_find_field(ev, "nh");
			if (!k->nh)
				k->pkt = NULL;
		}
	}
	lua_pop(L, 2);
	return k;
}

/* Decide the packet condition from a step's bytes, where they hold an IP
 * header. */
static void decide(struct src_path *s, struct track *e, struct evkind *k, void *data, int size)
{
	struct dp_packet p;
	int off = k->pkt->offset, len = k->pkt->size, have;
	size_t nh = (size_t)rd(k->nh, data, size);
	if (k->pkt->flags & TEP_FIELD_IS_DYNAMIC) {
		unsigned int dl = (unsigned int)rd(k->pkt, data, size);
		off = (int)(dl & 0xffff);
		len = (int)(dl >> 16);
		if (k->pkt->flags & TEP_FIELD_IS_RELATIVE)
			off += k->pkt->offset + k->pkt->size;
	}
	if (off < 0 || len < 0 || off + len > size || nh >= (size_t)len)
		return;
	have = dp_packet_decode((unsigned char *)data + off, (size_t)len, nh, &p);
	if (!have || !p.len || p.proto <= 0)
		return; /* not yet a whole IP header (an skb being built) */
	e->have = 1;
	e->pkt = p;
	e->match = dp_decoder_wants(&s->dec, &p, 1, (unsigned char *)data + off + nh, (size_t)len - nh);
}

/* The path of e as a record (the free event decoded, steps added) into the
 * joiner; 0 when the decoder made no record of it. */
static int emit(lua_State *L, struct src_path *s, struct dp_fill *f, int base, struct track *e,
		int cpu, void *data, int size, unsigned long long ts, int id, int drop)
{
	/* steps, dropped, packet, a stack: the keys a path record gets */
	int r = dp_decode(L, &s->dec, base, f->keys, cpu, data, size, ts, 4);
	if (r != DP_DEC_RECORD) {
		if (r == DP_DEC_STACK)
			lua_pop(L, 1);
		return 0;
	}
	lua_getfield(L, f->own, "ids");
	lua_createtable(L, e->nsteps + 1, 0);
	for (int i = 0; i <= e->nsteps; i++) {
		struct step last = { ts, id, cpu };
		const struct step *st = i < e->nsteps ? &e->steps[i] : &last;
		lua_createtable(L, 0, 3);
		lua_rawgeti(L, -3, st->id);
		lua_setfield(L, -2, "at");
		lua_pushnumber(L, (double)st->ts / 1e9);
		lua_setfield(L, -2, "ts");
		lua_pushinteger(L, st->cpu);
		lua_setfield(L, -2, "cpu");
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -3, "steps");
	lua_pop(L, 1); /* ids */
	if (e->cut) {
		lua_pushinteger(L, e->cut);
		lua_setfield(L, -2, "steps_cut");
	}
	lua_pushboolean(L, drop);
	lua_setfield(L, -2, "dropped");
	if (e->have) {
		dp_packet_push(L, &e->pkt);
		dp_setkey(L, f->keys, DP_K_PACKET);
	}
	dp_join_record(L, f->join, f->refs, f->keys, cpu, drop && dp_instance_stacked(s->inst));
	return 1;
}

/* skb_clone: at the entry the parent is noted for its task; at the return
 * the clone starts as a copy of the parent's path (its packet, its match,
 * its steps) with the clone as its next step, so that a packet sent as a
 * clone (a TCP segment) shows what its original went through. */
static void clone_event(struct src_path *s, enum kind kind, uint64_t skb, int id, int cpu, void *data,
			int size, unsigned long long ts)
{
	int pid = tep_data_pid(s->rb.tep, &(struct tep_record){ .data = data, .size = size });
	int p, ci, pi;
	long long before;
	uint64_t parent;
	struct track *pe, *ce;
	if (kind == K_CLONE) {
		if (s->npend == DP_PENDING) { /* a return never seen: the oldest goes */
			memmove(s->pend, s->pend + 1, sizeof(s->pend[0]) * (DP_PENDING - 1));
			s->npend--;
			s->clones_unpaired++;
		}
		s->pend[s->npend].pid = pid;
		s->pend[s->npend].cpu = cpu;
		s->pend[s->npend].parent = skb;
		s->npend++;
		return;
	}
	for (p = s->npend - 1; p >= 0; p--)
		if (s->pend[p].pid == pid && (pid != 0 || s->pend[p].cpu == cpu))
			break;
	if (p < 0) {
		s->clones_unpaired++;
		return;
	}
	parent = s->pend[p].parent;
	memmove(s->pend + p, s->pend + p + 1, sizeof(s->pend[0]) * (size_t)(s->npend - p - 1));
	s->npend--;
	if (!skb)
		return; /* the clone failed */
	ci = find(s, skb);
	if (ci >= 0)
		forget(s, ci); /* an address reused: a new skb */
	pi = find(s, parent);
	if (pi < 0 || s->limit < 2)
		return;
	/* the parent most recently used, so that making room never evicts it */
	lru_unlink(s, pi);
	lru_push(s, pi);
	ci = track_new(s, skb);
	pe = &s->t[pi];
	ce = &s->t[ci];
	if (s->cond && pe->match == 0) {
		ce->match = 0; /* a clone of an unwanted packet: no steps, not decided again */
		return;
	}
	ce->match = pe->match;
	ce->have = pe->have;
	ce->pkt = pe->pkt;
	ce->cut = pe->cut;
	before = s->steps;
	for (int j = 0; j < pe->nsteps; j++)
		add_step(s, ce, pe->steps[j].id, pe->steps[j].cpu, pe->steps[j].ts);
	s->steps = before; /* copies, not steps the kernel made */
	if (ce->match != 0 || !s->cond)
		add_step(s, ce, id, cpu, ts);
	s->clones++;
}

static int is_drop(struct src_path *s, void *data, int size, int cpu, unsigned long long ts)
{
	struct tep_record rec;
	if (!s->drop_filter)
		return 1;
	memset(&rec, 0, sizeof(rec));
	rec.data = data;
	rec.size = size;
	rec.cpu = cpu;
	rec.ts = ts;
	return tep_filter_match(s->drop_filter, &rec) == TEP_ERRNO__FILTER_MATCH;
}

static void one(lua_State *L, struct src_path *s, struct dp_fill *f, int base, int cpu,
		void *data, int size, unsigned long long ts)
{
	int id = tep_data_type(s->rb.tep, &(struct tep_record){ .data = data, .size = size });
	struct evkind *k = kind_of(L, s, f->own, id);
	int was = dp_waits_end(&s->emitted, cpu) >= 0;
	uint64_t skb;
	int i;
	if (!k || k->kind == K_OTHER)
		return;
	if (k->kind == K_STACK) {
		if (was) {
			if (dp_decode(L, &s->dec, base, f->keys, cpu, data, size, ts, 0) == DP_DEC_STACK)
				dp_join_stack(L, f->join, f->refs, f->keys, cpu);
			else
				lua_pop(L, 1);
		}
		return;
	}
	skb = rd(k->skb, data, size);
	if (k->kind == K_CLONE || k->kind == K_CLONED) {
		clone_event(s, k->kind, skb, id, cpu, data, size, ts);
		return;
	}
	if (!skb)
		return;
	i = find(s, skb);
	if (k->kind == K_STEP) {
		struct track *e;
		if (i < 0)
			i = track_new(s, skb);
		else {
			lru_unlink(s, i);
			lru_push(s, i);
		}
		e = &s->t[i];
		if (e->match < 0 && k->pkt && s->cond)
			decide(s, e, k, data, size);
		else if (!e->have && k->pkt && !s->cond)
			decide(s, e, k, data, size); /* only the packet, for the report */
		if (e->match != 0 || !s->cond)
			add_step(s, e, id, cpu, ts);
		return;
	}
	if (k->kind == K_END) {
		/* freed without a tracepoint: not a drop (every drop passes
		 * skb:kfree_skb), so a delivered packet's path with all */
		if (i >= 0) {
			struct track *e = &s->t[i];
			s->quiet++;
			if (s->all && e->nsteps > 0 && (!s->cond || e->match == 1) &&
			    emit(L, s, f, base, e, cpu, data, size, ts, id, 0))
				s->delivered++;
			forget(s, i);
		}
		return;
	}
	/* a free: the path ends here */
	if (i < 0) {
		s->nopath++;
		return;
	}
	{
		struct track *e = &s->t[i];
		int drop = k->kind == K_DROP && is_drop(s, data, size, cpu, ts);
		int wanted = !s->cond || e->match == 1;
		if (s->cond && e->match < 0)
			s->undecided++;
		else if (!wanted)
			s->unmatched++;
		if (wanted && e->nsteps > 0) {
			if (k->kind == K_DROP && !drop && s->drop_filter && !s->all)
				s->left_out++;
			else if (drop || s->all) {
				if (emit(L, s, f, base, e, cpu, data, size, ts, id, drop)) {
					if (drop)
						s->paths++;
					else
						s->delivered++;
					if (drop && dp_waits_room(&s->emitted, cpu) == 0)
						dp_waits_put(&s->emitted, cpu, 0);
				}
			}
		}
		forget(s, i);
	}
}

/* The tracker as the sink of the buffers: each event to one(). */
struct path_sink {
	struct dp_sink sink;
	lua_State *L;
	struct src_path *s;
	struct dp_fill *f;
	int base;
};

static int path_event(struct dp_sink *k, int cpu, void *data, int size, unsigned long long ts)
{
	struct path_sink *p = (struct path_sink *)k;
	one(p->L, p->s, p->f, p->base, cpu, data, size, ts);
	return 0;
}

static void path_lost(struct dp_sink *k, int cpu, long long n)
{
	struct path_sink *p = (struct path_sink *)k;
	dp_join_lost(p->L, p->f->join, cpu, n);
	p->s->npend = 0; /* a clone's entry or return may be among the lost */
}

static int path_fill(lua_State *L, void *src, struct dp_fill *f, int ms)
{
	struct path_sink p = {{path_event, path_lost, NULL}, L, src, f, 0};
	int n;
	p.base = dp_decode_begin(L, &p.s->dec);
	n = dp_rawbuf_feed(&p.s->rb, ms, &p.sink);
	dp_decode_end(L);
	return n < 0 ? DP_FILL_INTR : n == 0 ? DP_FILL_NONE : DP_FILL_DATA;
}

static int path_fd(void *src)
{
	struct src_path *s = src;
	return s->rb.ncpu ? s->rb.fds[0] : -1;
}

static void setint(lua_State *L, const char *k, long long v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

static void path_stats(lua_State *L, void *src)
{
	struct src_path *s = src;
	setint(L, "paths", s->paths);
	setint(L, "delivered", s->delivered);
	setint(L, "steps", s->steps);
	setint(L, "live", s->live);
	setint(L, "limit", s->limit);
	setint(L, "evicted", s->evicted);
	setint(L, "unmatched", s->unmatched);
	setint(L, "undecided", s->undecided);
	setint(L, "left_out", s->left_out);
	setint(L, "frees_without_path", s->nopath);
	setint(L, "quiet_frees", s->quiet);
	setint(L, "steps_cut", s->cut_steps);
	setint(L, "clones", s->clones);
	setint(L, "clones_unpaired", s->clones_unpaired);
	setint(L, "unknown_events", s->dec.unknown);
	setint(L, "pages", s->rb.pages);
	setint(L, "mapped", s->rb.mapped);
}

static void path_close(lua_State *L, void *src)
{
	struct src_path *s = src;
	dp_decoder_free(L, &s->dec);
	if (s->drop_filter)
		tep_filter_free(s->drop_filter);
	dp_rawbuf_close(&s->rb);
	for (int i = 0; i < s->limit && s->t; i++)
		free(s->t[i].steps);
	free(s->t);
	free(s->buckets);
	free(s->kinds);
	dp_waits_free(&s->emitted);
	free(s);
}

static const struct dp_source_ops path_ops = {
	.mode = "path",
	.fill = path_fill,
	.fd = path_fd,
	.stats = path_stats,
	.close = path_close,
	.max_wait_ms = 250,
};

static const char *table_setup(struct src_path *s)
{
	int nb = 64;
	while (nb < s->limit * 2)
		nb *= 2;
	s->nbuckets = nb;
	s->buckets = malloc(sizeof(int) * (size_t)nb);
	s->t = calloc((size_t)s->limit, sizeof(*s->t));
	if (!s->buckets || !s->t)
		return "out of memory";
	for (int i = 0; i < nb; i++)
		s->buckets[i] = -1;
	for (int i = 0; i < s->limit; i++) {
		s->t[i].next = i + 1 < s->limit ? i + 1 : -1;
		s->t[i].prev_l = s->t[i].next_l = -1;
	}
	s->free_head = 0;
	s->lru_head = s->lru_tail = -1;
	return NULL;
}

static const char *path_setup(lua_State *L, struct src_path *s, int opts, char *err, size_t errlen)
{
	const char *systems[64], *fail, *cond;
	int n = 0;
	lua_Integer pct = dp_opt_integer(L, opts, "buffer_percent", -1);
	if (lua_getfield(L, opts, "systems") == LUA_TTABLE) {
		for (int i = 1; n < 63; i++) {
			if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
				lua_pop(L, 1);
				break;
			}
			systems[n++] = lua_tostring(L, -1); /* anchored in opts */
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	systems[n] = NULL;
	fail = dp_rawbuf_open(&s->rb, s->inst->ti, systems, dp_tracing_dir_arg(), 1);
	if (fail)
		return fail;
	/* the symbols before the first read (a drop's location, and a
	 * condition on a pointer field against a string names it by them) */
	dp_ksyms_need(&s->rb.syms);
	fail = dp_decoder_init(L, &s->dec, &s->rb.syms, 0, 0);
	if (fail)
		return fail;
	s->dec.want_port = (int)dp_opt_integer(L, opts, "port", -1);
	lua_getfield(L, opts, "hosts");
	dp_decoder_hosts(L, &s->dec, lua_gettop(L));
	lua_pop(L, 1);
	lua_getfield(L, opts, "match");
	dp_decoder_match(L, &s->dec, lua_gettop(L));
	lua_pop(L, 1);
	s->cond = dp_decoder_has_condition(&s->dec);
	s->all = dp_opt_integer(L, opts, "all", 0) != 0;
	cond = dp_opt_string(L, opts, "condition", NULL);
	if (cond && *cond) {
		enum tep_errno r;
		char *expr;
		s->drop_filter = tep_filter_alloc(s->rb.tep);
		if (!s->drop_filter || asprintf(&expr, "skb/kfree_skb:%s", cond) < 0)
			return "out of memory";
		r = tep_filter_add_filter_str(s->drop_filter, expr);
		free(expr);
		if (r != 0) {
			char why[256] = "";
			tep_filter_strerror(s->drop_filter, r, why, sizeof(why));
			snprintf(err, errlen, "the drop condition '%s': %s", cond, why);
			return err;
		}
	}
	if (pct >= 0) {
		char v[16];
		snprintf(v, sizeof(v), "%d", (int)pct);
		if (tracefs_instance_file_write(s->inst->ti, "buffer_percent", v) < 0)
			return "cannot set buffer_percent";
	}
	return table_setup(s);
}

/***
 * A Pipe of paths over an instance's per-CPU binary buffers (`src_path.c`):
 * each skb followed by its address through the step events, in a bounded
 * table in C; each record is the free event that ended a path (decoded as
 * raw mode decodes it) with `steps` (`{ at, ts, cpu }`, the free last),
 * `packet` (its headers, from the first step that read them) and `dropped`.
 * `pipe:stats()` adds `paths`, `delivered`, `steps`, `live`, `limit`,
 * `evicted`, `unmatched`, `undecided`, `left_out`, `frees_without_path`,
 * `quiet_frees`, `steps_cut`, `clones` (clones that took a parent's path),
 * `clones_unpaired` (a clone's entry or return without the other).
 * @function path_pipe
 * @param inst an Instance
 * @tparam table opts `systems` (of the events used), `kinds` (`"system:name"`
 *   -> "step", "drop", "consume", "end", "clone" (skb_clone's entry: the
 *   parent) or "cloned" (its return: the clone, whose path starts as a copy
 *   of the parent's)), `labels` (`"system:name"` ->
 *   what a step is called; default "system:name"), `condition` (which kfree_skb are drops: a filter with
 *   numbers, run by libtraceevent), `all` (also delivered packets' paths),
 *   `port`, `hosts`, `match` (the packet condition, decided at the first
 *   step that read the headers), `limit` (live skbs followed, default
 *   4096), `max_steps` (a path's, default 256), `buffer_percent`, `grace`
 * @return a Pipe
 */
static int path_pipe(lua_State *L)
{
	static const char *const opts[] = {"systems", "kinds", "labels", "condition", "all", "port",
					   "hosts", "match", "limit", "max_steps", "buffer_percent",
					   "grace", NULL};
	struct dp_instance *in = dp_check_instance(L, 1);
	struct src_path *s;
	const char *fail;
	char msg[768], err[512];
	lua_Integer limit, max_steps;
	luaL_checktype(L, 2, LUA_TTABLE);
	dp_check_fields(L, 2, opts);
	limit = dp_opt_integer(L, 2, "limit", 4096);
	max_steps = dp_opt_integer(L, 2, "max_steps", 256);
	if (limit < 1 || limit > (1 << 22))
		return luaL_error(L, "path_pipe: limit is 1 to %d live skbs", 1 << 22);
	if (max_steps < 1 || max_steps > 65536)
		return luaL_error(L, "path_pipe: max_steps is 1 to 65536");
	lua_createtable(L, 0, 3);
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, "instance");
	lua_getfield(L, 2, "kinds");
	if (!lua_istable(L, -1))
		return luaL_error(L, "path_pipe: kinds is a table of \"system:name\" -> kind");
	lua_setfield(L, -2, "kinds");
	lua_getfield(L, 2, "labels");
	if (!lua_istable(L, -1))
		return luaL_error(L, "path_pipe: labels is a table of \"system:name\" -> name");
	lua_setfield(L, -2, "labels");
	lua_newtable(L);
	lua_setfield(L, -2, "ids");
	s = calloc(1, sizeof(*s));
	if (!s)
		return luaL_error(L, "out of memory");
	s->inst = in;
	s->dec.cache_ref = LUA_NOREF;
	s->limit = (int)limit;
	s->max_steps = (int)max_steps;
	dp_pipe_new(L, &path_ops, s, -1, dp_opt_number(L, 2, "grace", 0.1));
	errno = 0;
	fail = path_setup(L, s, 2, err, sizeof(err));
	if (fail) {
		int e = fail == err ? 0 : errno;
		snprintf(msg, sizeof(msg), "path: %s%s%s", fail, e ? ": " : "", e ? strerror(e) : "");
		return dp_pipe_fail(L, -1, msg);
	}
	dp_instance_adopt(L, 1, -1, DP_CHILD_READER, NULL);
	return 1;
}

void dp_src_path_open(lua_State *L)
{
	lua_pushcfunction(L, path_pipe);
	lua_setfield(L, -2, "path_pipe");
}
