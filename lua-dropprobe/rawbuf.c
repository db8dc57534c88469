/*
 * rawbuf.c - the per-CPU binary buffers (see rawbuf.h). No ring-buffer
 * format is parsed here: kbuffer does that with the kernel's header_page.
 */
#include "rawbuf.h"
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <event-parse.h>
#include <kbuffer.h>
#include <tracefs.h>

/*
 * The meta page at the start of a mapped trace_pipe_raw, as the kernel's
 * uapi linux/trace_mmap.h lays it out (not every distribution installs
 * that header); only the fields read here are named.
 */
struct rb_meta {
	uint32_t meta_page_size;
	uint32_t meta_struct_len;
	uint32_t subbuf_size;
	uint32_t nr_subbufs;
	struct {
		uint64_t lost_events;
		uint32_t id;
		uint32_t read;
	} reader;
};
#define RB_GET_READER _IO('R', 0x20) /* TRACE_MMAP_IOCTL_GET_READER */

/* One CPU's mapping: the meta page, the sub-buffers after it, and how far
 * into the reader sub-buffer the events were handed out. */
struct dp_rbmap {
	volatile struct rb_meta *meta; /* NULL: this CPU is copied */
	size_t meta_len;
	char *data;
	size_t data_len;
	uint32_t id; /* the reader sub-buffer last loaded */
	int off;     /* its data bytes handed out (from the start of its events) */
	int end;     /* its data bytes when last loaded */
};

static int earlier(struct dp_rawbuf *rb, int a, int b)
{
	return rb->next_ts[rb->heap[a]] < rb->next_ts[rb->heap[b]];
}

static void swap(struct dp_rawbuf *rb, int a, int b)
{
	int t = rb->heap[a];
	rb->heap[a] = rb->heap[b];
	rb->heap[b] = t;
}

static void heap_push(struct dp_rawbuf *rb, int cpu)
{
	int i = rb->nheap++;
	rb->heap[i] = cpu;
	while (i > 0 && earlier(rb, i, (i - 1) / 2)) {
		swap(rb, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct dp_rawbuf *rb, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < rb->nheap && earlier(rb, l, m))
			m = l;
		if (r < rb->nheap && earlier(rb, r, m))
			m = r;
		if (m == i)
			return;
		swap(rb, i, m);
		i = m;
	}
}

/* The kernel lost n events of cpu before its sub-buffer (n < 0: it did
 * not say how many, which stays so until taken) */
static void add_missed(struct dp_rawbuf *rb, int cpu, int n)
{
	if (n < 0)
		rb->missed[cpu] = -1;
	else if (n > 0 && rb->missed[cpu] >= 0)
		rb->missed[cpu] += n;
}

/* Read one sub-buffer of cpu. 1: an event is there, 0: none */
static int load_page(struct dp_rawbuf *rb, int cpu)
{
	ssize_t n = read(rb->fds[cpu], rb->page[cpu], (size_t)rb->psize);
	int missed;
	if (n <= 0)
		return 0;
	rb->pages++;
	if (kbuffer_load_subbuffer(rb->kb[cpu], rb->page[cpu]) < 0)
		return 0;
	missed = kbuffer_missed_events(rb->kb[cpu]);
	add_missed(rb, cpu, missed);
	rb->next[cpu] = kbuffer_read_event(rb->kb[cpu], &rb->next_ts[cpu]);
	return rb->next[cpu] != NULL;
}

static void unmap_cpu(struct dp_rbmap *m);

/*
 * A mapped CPU: ask the kernel for the reader sub-buffer (the same one
 * while it still has events not handed out, the writer may be adding to
 * it; else the next one) and go on from where the last load ended. The
 * events stay in place: the sub-buffer is not given back before the next
 * load of this CPU. 1: an event is there, 0: none
 */
static int load_mapped(struct dp_rawbuf *rb, int cpu)
{
	struct dp_rbmap *m = &rb->map[cpu];
	struct kbuffer *kb = rb->kb[cpu];
	/* twice at most: the kernel marks a sub-buffer read up to its commit
	 * when it hands it out, so one that was filled after that comes back
	 * once more with nothing new before the next is handed out */
	for (int again = 0; again < 2; again++) {
		uint32_t id;
		int fresh = 0;
		if (m->end > m->off)
			m->off = m->end; /* what the last load had was handed out */
		if (ioctl(rb->fds[cpu], RB_GET_READER) < 0) {
			/* refused now: this CPU is copied from here on */
			unmap_cpu(m);
			rb->mapped--;
			return load_page(rb, cpu);
		}
		id = m->meta->reader.id;
		if (id >= m->meta->nr_subbufs)
			return 0;
		if (id != m->id) {
			m->id = id;
			m->off = 0;
			fresh = 1;
		}
		if (kbuffer_load_subbuffer(kb, m->data + (size_t)id * m->meta->subbuf_size) < 0)
			return 0;
		if (fresh) {
			add_missed(rb, cpu, kbuffer_missed_events(kb));
			rb->pages++;
		}
		if (m->off >= kbuffer_subbuffer_size(kb))
			rb->next[cpu] = NULL;
		else if (m->off == 0)
			rb->next[cpu] = kbuffer_read_event(kb, &rb->next_ts[cpu]);
		else /* past what was handed out (timestamps summed from the start) */
			rb->next[cpu] = kbuffer_read_at_offset(kb, kbuffer_start_of_data(kb) + m->off,
							       &rb->next_ts[cpu]);
		/* the end of what this load hands out, known only now:
		 * kbuffer_read_at_offset loads the sub-buffer again, and the
		 * writer may have added to it since */
		m->end = kbuffer_subbuffer_size(kb);
		if (rb->next[cpu])
			break;
	}
	return rb->next[cpu] != NULL;
}

static int load_all(struct dp_rawbuf *rb)
{
	for (int c = 0; c < rb->ncpu; c++)
		if (!rb->next[c] && (rb->map && rb->map[c].meta ? load_mapped(rb, c) : load_page(rb, c)))
			heap_push(rb, c);
	return rb->nheap;
}

/* A forked child has the fds but not the mappings (the kernel does not
 * copy them): it forgets them, without unmapping what is not its own,
 * and copies from then on. */
static void forget_maps_after_fork(struct dp_rawbuf *rb)
{
	if (!rb->map || rb->map_pid == getpid())
		return;
	free(rb->map);
	rb->map = NULL;
	rb->mapped = 0;
}

/* Load what the buffers have; when nothing, wait up to ms and try once
 * more. Returns the CPUs with events ready, or -1 when a signal came. */
static int load(struct dp_rawbuf *rb, int ms)
{
	forget_maps_after_fork(rb);
	if (load_all(rb))
		return rb->nheap;
	/* poll wakes only at buffer_percent: a timeout still reads */
	if (poll(rb->pfd, (nfds_t)rb->ncpu, ms) < 0 && errno == EINTR)
		return -1;
	return load_all(rb);
}

/* The next event in time order among what is loaded; 0 when none. */
static int next_event(struct dp_rawbuf *rb, int *cpu, void **data, int *size,
		      unsigned long long *ts)
{
	int c;
	if (!rb->nheap)
		return 0;
	c = rb->heap[0];
	*cpu = c;
	*data = rb->next[c];
	*size = kbuffer_event_size(rb->kb[c]);
	*ts = rb->next_ts[c];
	rb->next[c] = kbuffer_next_event(rb->kb[c], &rb->next_ts[c]);
	if (!rb->next[c])
		rb->heap[0] = rb->heap[--rb->nheap];
	heap_down(rb, 0);
	return 1;
}

int dp_rawbuf_feed(struct dp_rawbuf *rb, int ms, struct dp_sink *k)
{
	int cpu, size, n = load(rb, ms);
	unsigned long long ts;
	void *data;
	for (int c = 0; c < rb->ncpu; c++)
		if (rb->missed[c]) {
			long long n = rb->missed[c];
			rb->missed[c] = 0; /* taken, also if the sink raises */
			k->lost(k, c, n);
		}
	while (n > 0 && next_event(rb, &cpu, &data, &size, &ts))
		k->event(k, cpu, data, size, ts);
	return n;
}

/* Every page there is now (at most max a CPU) to the sink. */
static long pages_now(struct dp_rawbuf *rb, int max, dp_page_sink sink, void *ctx)
{
	long got = 0;
	for (int c = 0; c < rb->ncpu; c++) {
		for (int k = 0; k < max; k++) {
			ssize_t n = read(rb->fds[c], rb->page[c], (size_t)rb->psize);
			if (n <= 0)
				break; /* 0 or EAGAIN: nothing now, not the end */
			rb->pages++;
			got++;
			if (sink(ctx, c, rb->page[c], (int)n) < 0)
				return -2;
		}
	}
	return got;
}

long dp_rawbuf_pages(struct dp_rawbuf *rb, int ms, int max, dp_page_sink sink, void *ctx)
{
	long got = pages_now(rb, max, sink, ctx);
	if (got != 0 || ms <= 0)
		return got;
	if (poll(rb->pfd, (nfds_t)rb->ncpu, ms) < 0 && errno == EINTR)
		return -1;
	return pages_now(rb, max, sink, ctx);
}

static void unmap_cpu(struct dp_rbmap *m)
{
	if (m->data)
		munmap(m->data, m->data_len);
	if (m->meta)
		munmap((void *)m->meta, m->meta_len);
	memset(m, 0, sizeof(*m));
}

/* Map the buffer of cpu where the kernel lets this reader; 0 when not
 * (the CPU is then copied: an old kernel, a snapshot in use, ...). */
static int map_cpu(struct dp_rawbuf *rb, int cpu)
{
	struct dp_rbmap *m = &rb->map[cpu];
	size_t page = (size_t)getpagesize();
	void *p = mmap(NULL, page, PROT_READ, MAP_SHARED, rb->fds[cpu], 0);
	if (p == MAP_FAILED)
		return 0;
	m->meta = p;
	m->meta_len = page;
	if (m->meta->meta_page_size > page) {
		size_t len = m->meta->meta_page_size;
		munmap(p, page);
		m->meta = NULL;
		p = mmap(NULL, len, PROT_READ, MAP_SHARED, rb->fds[cpu], 0);
		if (p == MAP_FAILED)
			return 0;
		m->meta = p;
		m->meta_len = len;
	}
	/* a sub-buffer kbuffer reads must hold what read() would give */
	if (m->meta->subbuf_size == 0 || m->meta->nr_subbufs == 0 ||
	    (int)m->meta->subbuf_size > rb->psize) {
		unmap_cpu(m);
		return 0;
	}
	m->data_len = (size_t)m->meta->subbuf_size * m->meta->nr_subbufs;
	p = mmap(NULL, m->data_len, PROT_READ, MAP_SHARED, rb->fds[cpu],
		 (off_t)m->meta->meta_page_size);
	if (p == MAP_FAILED) {
		m->data = NULL;
		unmap_cpu(m);
		return 0;
	}
	m->data = p;
	/* what another reader already took of the reader sub-buffer */
	m->id = m->meta->reader.id;
	m->off = m->end = (int)m->meta->reader.read;
	return 1;
}

void dp_rawbuf_close(struct dp_rawbuf *rb)
{
	forget_maps_after_fork(rb);
	for (int c = 0; c < rb->ncpu; c++) {
		if (rb->map)
			unmap_cpu(&rb->map[c]);
		if (rb->fds && rb->fds[c] >= 0)
			close(rb->fds[c]);
		if (rb->kb && rb->kb[c])
			kbuffer_free(rb->kb[c]);
		if (rb->page)
			free(rb->page[c]);
	}
	free(rb->fds);
	free(rb->pfd);
	free(rb->kb);
	free(rb->page);
	free(rb->next);
	free(rb->next_ts);
	free(rb->missed);
	free(rb->heap);
	free(rb->map);
	dp_ksyms_free(&rb->syms); /* the tep's resolver: before the tep */
	if (rb->tep)
		tep_free(rb->tep);
	memset(rb, 0, sizeof(*rb));
}

static const char *open_buffers(struct dp_rawbuf *rb, struct tracefs_instance *ti);

static int listed(const char *name, const char *const *names)
{
	for (; names && *names; names++)
		if (strcmp(name, *names) == 0)
			return 1;
	return 0;
}

/* Every event format of system sys (events/<sys>/<event>/format) into
 * tep; one that cannot be read or parsed is left out. */
static void load_system(struct tep_handle *tep, const char *tdir, const char *sys)
{
	char **events = tracefs_system_events(tdir, sys);
	for (int i = 0; events && events[i]; i++) {
		int len = 0;
		char *fmt = tracefs_event_file_read(NULL, sys, events[i], "format", &len);
		if (fmt && len > 0)
			tep_parse_event(tep, fmt, (unsigned long)len, sys);
		free(fmt);
	}
	tracefs_list_free(events);
}

/* A tep for this host's own buffers: their records are in the host's byte
 * order (tep_alloc takes the file's for little-endian, which a big-endian
 * host's buffers are not). */
static struct tep_handle *live_tep(void)
{
	struct tep_handle *tep = tep_alloc();
	enum tep_endian e = tep_is_bigendian() ? TEP_BIG_ENDIAN : TEP_LITTLE_ENDIAN;
	if (tep) {
		tep_set_file_bigendian(tep, e);
		tep_set_local_bigendian(tep, e);
	}
	return tep;
}

/*
 * A tep with this kernel's formats of the wanted systems, as
 * tracefs_local_events_system builds it but without its kallsyms (about
 * 0.07 s of sscanf on 120k symbols, read at the first lookup instead:
 * ksym.h): header_page (none: NULL; an empty one is no failure, as
 * there), the formats of each wanted system
 * that has an enable file and of ftrace (which has none) if wanted,
 * printk_formats where there is one, the CPUs the buffers exist for, the
 * long size of the header page. tdir: the tracing directory, which
 * libtracefs's readers follow (the fake tree is set with
 * tracefs_set_tracing_dir).
 */
static struct tep_handle *load_formats(const char *tdir, const char *const *wanted)
{
	char **systems = tdir ? tracefs_event_systems(tdir) : NULL;
	struct tep_handle *tep = systems ? live_tep() : NULL;
	struct stat st;
	char path[4096];
	char *buf = NULL;
	int len = 0, cpus, max_cpu = 0;
	if (tep)
		snprintf(path, sizeof(path), "%s/events/header_page", tdir);
	if (!tep || stat(path, &st) < 0) {
		tracefs_list_free(systems);
		if (tep)
			tep_free(tep);
		return NULL;
	}
	/* one that exists but reads empty (a fake tree's) is no failure */
	if ((buf = tracefs_instance_file_read(NULL, "events/header_page", &len)) && len > 0)
		tep_parse_header_page(tep, buf, len, sizeof(long));
	free(buf);
	for (int i = 0; systems[i]; i++)
		if (listed(systems[i], wanted))
			load_system(tep, tdir, systems[i]);
	tracefs_list_free(systems);
	if (listed("ftrace", wanted))
		load_system(tep, tdir, "ftrace");
	if ((buf = tracefs_instance_file_read(NULL, "printk_formats", &len)) && len > 0)
		tep_parse_printk_formats(tep, buf);
	free(buf);
	/* the buffers that exist (per_cpu/cpuN), up to the CPUs configured */
	cpus = (int)sysconf(_SC_NPROCESSORS_CONF);
	for (int i = 0; !cpus || i < cpus; i++) {
		snprintf(path, sizeof(path), "%s/per_cpu/cpu%d", tdir, i);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			max_cpu = i + 1;
		else if (i >= cpus)
			break;
	}
	tep_set_cpus(tep, max_cpu ? max_cpu : cpus);
	tep_set_long_size(tep, tep_get_header_page_size(tep));
	return tep;
}

const char *dp_rawbuf_open(struct dp_rawbuf *rb, struct tracefs_instance *ti,
			   const char *const *systems, const char *dir, int map)
{
	const char *fail;
	const char *sys[66];
	int ns = 0;
	memset(rb, 0, sizeof(*rb));
	for (; systems && systems[ns] && ns < 64; ns++)
		sys[ns] = systems[ns];
	sys[ns++] = "ftrace";
	sys[ns] = NULL;
	rb->tep = load_formats(dir ? dir : tracefs_tracing_dir(), sys);
	if (!rb->tep)
		return "cannot load the event formats (events/header_page, formats)";
	dp_ksyms_init(&rb->syms, rb->tep, 1);
	tracefs_load_cmdlines(dir, rb->tep);
	fail = open_buffers(rb, ti);
	if (fail || !map)
		return fail;
	rb->map = calloc((size_t)rb->ncpu, sizeof(*rb->map));
	if (!rb->map) {
		errno = ENOMEM;
		return "out of memory";
	}
	rb->map_pid = getpid();
	for (int c = 0; c < rb->ncpu; c++)
		rb->mapped += map_cpu(rb, c);
	return NULL;
}

const char *dp_rawbuf_open_pages(struct dp_rawbuf *rb, struct tracefs_instance *ti)
{
	int size = 0;
	char *hp;
	memset(rb, 0, sizeof(*rb));
	/* the sub-buffer layout only: no formats, no kallsyms */
	hp = tracefs_instance_file_read(NULL, "events/header_page", &size);
	rb->tep = live_tep();
	if (!hp || !rb->tep || tep_parse_header_page(rb->tep, hp, size, sizeof(long long)) < 0) {
		free(hp);
		return "cannot read events/header_page";
	}
	free(hp);
	return open_buffers(rb, ti);
}

static const char *open_buffers(struct dp_rawbuf *rb, struct tracefs_instance *ti)
{
	long long kb = 0;
	struct tep_handle *tep = rb->tep;
	rb->psize = tep_get_sub_buffer_size(tep);
	/* a per-instance sub-buffer size overrides header_page's */
	if (tracefs_instance_file_read_number(ti, "buffer_subbuf_size_kb", &kb) == 0 && kb > 0 &&
	    kb * 1024 > rb->psize)
		rb->psize = (int)(kb * 1024);
	if (rb->psize <= 0)
		rb->psize = getpagesize();
	rb->ncpu = tep_get_cpus(tep);
	if (rb->ncpu <= 0)
		rb->ncpu = (int)sysconf(_SC_NPROCESSORS_CONF);
	rb->fds = malloc(sizeof(int) * (size_t)rb->ncpu);
	for (int c = 0; rb->fds && c < rb->ncpu; c++)
		rb->fds[c] = -1;
	rb->pfd = calloc((size_t)rb->ncpu, sizeof(*rb->pfd));
	rb->kb = calloc((size_t)rb->ncpu, sizeof(*rb->kb));
	rb->page = calloc((size_t)rb->ncpu, sizeof(void *));
	rb->next = calloc((size_t)rb->ncpu, sizeof(void *));
	rb->next_ts = calloc((size_t)rb->ncpu, sizeof(unsigned long long));
	rb->missed = calloc((size_t)rb->ncpu, sizeof(long long));
	rb->heap = calloc((size_t)rb->ncpu, sizeof(int));
	if (!rb->fds || !rb->pfd || !rb->kb || !rb->page || !rb->next || !rb->next_ts ||
	    !rb->missed || !rb->heap) {
		errno = ENOMEM;
		return "out of memory";
	}
	for (int c = 0; c < rb->ncpu; c++) {
		char file[64];
		snprintf(file, sizeof(file), "per_cpu/cpu%d/trace_pipe_raw", c);
		rb->fds[c] = tracefs_instance_file_open(ti, file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (rb->fds[c] < 0 && tracefs_file_exists(ti, file))
			return "cannot open per_cpu trace_pipe_raw";
		if (rb->fds[c] < 0) /* an offline CPU: an fd that never has data */
			rb->fds[c] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		rb->kb[c] = kbuffer_alloc(tep_get_header_page_size(tep) == 4 ? KBUFFER_LSIZE_4
									  : KBUFFER_LSIZE_8,
					  tep_is_file_bigendian(tep) ? KBUFFER_ENDIAN_BIG
								     : KBUFFER_ENDIAN_LITTLE);
		rb->page[c] = malloc((size_t)rb->psize);
		if (!rb->kb[c] || !rb->page[c]) {
			errno = ENOMEM;
			return "out of memory";
		}
		rb->pfd[c].fd = rb->fds[c];
		rb->pfd[c].events = POLLIN;
	}
	return NULL;
}
