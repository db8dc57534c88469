/*
 * src_raw.c - records from an instance's per-CPU binary ring buffers
 * (per_cpu/cpuN/trace_pipe_raw), read a whole sub-buffer at a time without
 * blocking, split into events by kbuffer and decoded by the decoder
 * (decode.c) with the kernel's formats. Events of all CPUs come out in
 * timestamp order: the CPUs with a loaded page sit in a heap by the time
 * of their next event.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event-parse.h>
#include <kbuffer.h>
#include <tracefs.h>

#include "comm.h"
#include "core.h"
#include "decode.h"
#include "instance.h"
#include "record.h"
#include "source.h"

struct src_raw {
	struct dp_instance *inst; /* alive while own.instance holds it */
	struct dp_decoder dec;
	int ncpu;
	int *fds;
	struct pollfd *pfd;
	struct kbuffer **kb;
	void **page;
	void **next;                 /* per CPU: the next event of its loaded page */
	unsigned long long *next_ts; /* and its time */
	int *heap, nheap;            /* CPUs with a next event, earliest first */
	int psize;
	long long pages;
	struct dp_misses misses;
};

static int earlier(struct src_raw *s, int a, int b)
{
	return s->next_ts[s->heap[a]] < s->next_ts[s->heap[b]];
}

static void swap(struct src_raw *s, int a, int b)
{
	int t = s->heap[a];
	s->heap[a] = s->heap[b];
	s->heap[b] = t;
}

static void heap_push(struct src_raw *s, int cpu)
{
	int i = s->nheap++;
	s->heap[i] = cpu;
	while (i > 0 && earlier(s, i, (i - 1) / 2)) {
		swap(s, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct src_raw *s, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->nheap && earlier(s, l, m))
			m = l;
		if (r < s->nheap && earlier(s, r, m))
			m = r;
		if (m == i)
			return;
		swap(s, i, m);
		i = m;
	}
}

/* Read one sub-buffer of cpu. 1: an event is there, 0: none */
static int load_page(lua_State *L, struct src_raw *s, struct dp_fill *f, int cpu)
{
	ssize_t n = read(s->fds[cpu], s->page[cpu], (size_t)s->psize);
	int missed;
	if (n <= 0)
		return 0;
	s->pages++;
	if (kbuffer_load_subbuffer(s->kb[cpu], s->page[cpu]) < 0)
		return 0;
	missed = kbuffer_missed_events(s->kb[cpu]);
	if (missed)
		dp_join_lost(L, f->join, cpu, missed);
	s->next[cpu] = kbuffer_read_event(s->kb[cpu], &s->next_ts[cpu]);
	return s->next[cpu] != NULL;
}

static int load_all(lua_State *L, struct src_raw *s, struct dp_fill *f)
{
	for (int c = 0; c < s->ncpu; c++)
		if (!s->next[c] && load_page(L, s, f, c))
			heap_push(s, c);
	return s->nheap;
}

static int raw_fill(lua_State *L, void *src, struct dp_fill *f, int ms)
{
	struct src_raw *s = src;
	int hold, base, comms;
	if (!load_all(L, s, f)) {
		/* poll wakes only at buffer_percent: a timeout still reads */
		if (poll(s->pfd, (nfds_t)s->ncpu, ms) < 0 && errno == EINTR)
			return DP_FILL_INTR;
		if (!load_all(L, s, f))
			return DP_FILL_NONE;
	}
	hold = !s->inst->closed && s->inst->stack_triggers > 0;
	base = dp_decode_begin(L, &s->dec);
	while (s->nheap) {
		int cpu = s->heap[0];
		void *data = s->next[cpu];
		int k = dp_decode(L, &s->dec, base, f->keys, cpu, data,
				  kbuffer_event_size(s->kb[cpu]), s->next_ts[cpu]);
		if (k == DP_DEC_RECORD) {
			int ref = dp_join_record(L, f->join, f->refs, f->keys, cpu, hold);
			if (s->dec.missed_pid >= 0) {
				dp_misses_add(L, &s->misses, ref, s->dec.missed_pid);
				s->dec.missed_pid = -1;
			}
		} else if (k == DP_DEC_STACK) {
			dp_join_stack(L, f->join, f->refs, f->keys, cpu, 0);
		}
		s->next[cpu] = kbuffer_next_event(s->kb[cpu], &s->next_ts[cpu]);
		if (!s->next[cpu])
			s->heap[0] = s->heap[--s->nheap];
		heap_down(s, 0);
	}
	dp_decode_end(L);
	if (s->misses.n) {
		dp_decoder_comms(L, &s->dec);
		comms = lua_gettop(L);
		dp_misses_fix(L, &s->misses, s->dec.tep, f->refs, f->keys, comms);
		lua_pop(L, 1);
	}
	return DP_FILL_DATA;
}

static int raw_fd(void *src)
{
	struct src_raw *s = src;
	return s->ncpu ? s->fds[0] : -1;
}

static void raw_stats(lua_State *L, void *src)
{
	struct src_raw *s = src;
	lua_pushinteger(L, s->dec.unknown);
	lua_setfield(L, -2, "unknown_events");
	lua_pushinteger(L, s->pages);
	lua_setfield(L, -2, "pages");
}

static void raw_close(lua_State *L, void *src)
{
	struct src_raw *s = src;
	for (int c = 0; c < s->ncpu; c++) {
		if (s->fds && s->fds[c] >= 0)
			close(s->fds[c]);
		if (s->kb && s->kb[c])
			kbuffer_free(s->kb[c]);
		if (s->page)
			free(s->page[c]);
	}
	free(s->fds);
	free(s->pfd);
	free(s->kb);
	free(s->page);
	free(s->next);
	free(s->next_ts);
	free(s->heap);
	dp_decoder_free(L, &s->dec); /* and its tep */
	dp_misses_free(&s->misses);
	free(s);
}

static const struct dp_source_ops raw_ops = {
	.mode = "raw",
	.fill = raw_fill,
	.fd = raw_fd,
	.stats = raw_stats,
	.close = raw_close,
	.max_wait_ms = 250, /* poll wakes only at buffer_percent: read partial pages */
};

/* Open the buffers; NULL or what failed (errno set where it tells more). */
static const char *raw_setup(lua_State *L, struct src_raw *s, int opts)
{
	struct tep_handle *tep;
	const char *systems[64], *fail;
	const char *dir = dp_custom_dir ? tracefs_tracing_dir() : NULL;
	int ns = 0;
	lua_Integer pct = dp_opt_integer(L, opts, "buffer_percent", -1);
	long long kb = 0;
	/* the systems of the events used, and ftrace for stacks */
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
	systems[ns++] = "ftrace";
	systems[ns] = NULL;
	tep = tracefs_local_events_system(dir, systems);
	lua_pop(L, 1);
	if (!tep)
		return "cannot load the event formats (events/header_page, formats)";
	tracefs_load_cmdlines(dir, tep);
	s->psize = tep_get_sub_buffer_size(tep);
	/* a per-instance sub-buffer size overrides header_page's */
	if (tracefs_instance_file_read_number(s->inst->ti, "buffer_subbuf_size_kb", &kb) == 0 &&
	    kb > 0 && kb * 1024 > s->psize)
		s->psize = (int)(kb * 1024);
	if (s->psize <= 0)
		s->psize = getpagesize();
	lua_getfield(L, opts, "symbols");
	fail = dp_decoder_init(L, &s->dec, tep, 1, lua_istable(L, -1) ? lua_gettop(L) : 0);
	lua_pop(L, 1);
	if (fail)
		return fail;
	s->ncpu = tep_get_cpus(tep);
	if (s->ncpu <= 0)
		s->ncpu = (int)sysconf(_SC_NPROCESSORS_CONF);
	s->fds = malloc(sizeof(int) * (size_t)s->ncpu);
	s->pfd = calloc((size_t)s->ncpu, sizeof(*s->pfd));
	s->kb = calloc((size_t)s->ncpu, sizeof(*s->kb));
	s->page = calloc((size_t)s->ncpu, sizeof(void *));
	s->next = calloc((size_t)s->ncpu, sizeof(void *));
	s->next_ts = calloc((size_t)s->ncpu, sizeof(unsigned long long));
	s->heap = calloc((size_t)s->ncpu, sizeof(int));
	for (int c = 0; s->fds && c < s->ncpu; c++)
		s->fds[c] = -1;
	if (!s->fds || !s->pfd || !s->kb || !s->page || !s->next || !s->next_ts || !s->heap) {
		errno = ENOMEM;
		return "out of memory";
	}
	for (int c = 0; c < s->ncpu; c++) {
		char file[64];
		snprintf(file, sizeof(file), "per_cpu/cpu%d/trace_pipe_raw", c);
		s->fds[c] = tracefs_instance_file_open(s->inst->ti, file, O_RDONLY | O_NONBLOCK);
		if (s->fds[c] < 0 && tracefs_file_exists(s->inst->ti, file))
			return "cannot open per_cpu trace_pipe_raw";
		if (s->fds[c] < 0) /* an offline CPU: an fd that never has data */
			s->fds[c] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		s->kb[c] = kbuffer_alloc(tep_get_header_page_size(tep) == 4 ? KBUFFER_LSIZE_4
									 : KBUFFER_LSIZE_8,
					 tep_is_file_bigendian(tep) ? KBUFFER_ENDIAN_BIG
								    : KBUFFER_ENDIAN_LITTLE);
		s->page[c] = malloc((size_t)s->psize);
		if (!s->kb[c] || !s->page[c]) {
			errno = ENOMEM;
			return "out of memory";
		}
		s->pfd[c].fd = s->fds[c];
		s->pfd[c].events = POLLIN;
	}
	if (pct >= 0) {
		char v[16];
		snprintf(v, sizeof(v), "%d", (int)pct);
		if (tracefs_instance_file_write(s->inst->ti, "buffer_percent", v) < 0)
			return "cannot set buffer_percent";
	}
	return NULL;
}

/*
 * core.raw_pipe(inst, { systems =, symbols =, buffer_percent =, grace = }) -> Pipe
 * systems: of the events used (their formats are loaded); symbols: event
 * -> { field = {[n]=name} } for fields whose format names nothing.
 */
static int raw_pipe(lua_State *L)
{
	static const char *const opts[] = {"systems", "symbols", "buffer_percent", "grace", NULL};
	struct dp_instance *in = dp_check_instance(L, 1);
	struct src_raw *s;
	const char *fail;
	char msg[512];
	luaL_checktype(L, 2, LUA_TTABLE);
	dp_check_fields(L, 2, opts);
	lua_createtable(L, 0, 1);
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, "instance");
	s = calloc(1, sizeof(*s));
	if (!s)
		return luaL_error(L, "out of memory");
	s->inst = in;
	s->dec.cache_ref = LUA_NOREF;
	dp_pipe_new(L, &raw_ops, s, -1, dp_opt_number(L, 2, "grace", 0.1));
	errno = 0;
	fail = raw_setup(L, s, 2);
	if (fail) {
		int e = errno;
		snprintf(msg, sizeof(msg), "raw mode: %s%s%s", fail, e ? ": " : "",
			 e ? strerror(e) : "");
		return dp_pipe_fail(L, -1, msg);
	}
	dp_instance_adopt(L, 1, -1, DP_CHILD_READER, NULL);
	return 1;
}

void dp_src_raw_open(lua_State *L)
{
	lua_pushcfunction(L, raw_pipe);
	lua_setfield(L, -2, "raw_pipe");
}
