/*
 * rawbuf.h - an instance's per-CPU binary ring buffers
 * (per_cpu/cpuN/trace_pipe_raw): whole sub-buffers read without blocking,
 * split into events by kbuffer with the kernel's formats, handed out in
 * timestamp order across CPUs (the CPUs with a loaded page sit in a heap
 * by the time of their next event) to a sink (sink.h), which decides what
 * an event becomes: a record (src_raw.c), a count (count.c), a step of a
 * path (src_path.c).
 *
 * Where the kernel lets a reader map a CPU's buffer (6.10 on: mmap of
 * trace_pipe_raw and its TRACE_MMAP_IOCTL_GET_READER), the events are
 * read in place from the mapped reader sub-buffer instead of copied out
 * with read(); elsewhere, and for the pages of a recording, they are
 * copied.
 */
#ifndef DROPPROBE_RAWBUF_H
#define DROPPROBE_RAWBUF_H

#include <poll.h>

#include "ksym.h"

struct tracefs_instance;
struct tep_handle;
struct kbuffer;
struct dp_rbmap;

struct dp_rawbuf {
	struct tep_handle *tep; /* the formats of the systems asked for, and ftrace */
	struct dp_ksyms syms;   /* tep's symbols: /proc/kallsyms, read at the first lookup */
	int ncpu;
	int *fds;
	struct pollfd *pfd;
	struct kbuffer **kb;
	void **page;
	void **next;                 /* per CPU: the next event of its loaded page */
	unsigned long long *next_ts; /* and its time */
	long long *missed;           /* per CPU: events the kernel reported lost, not yet taken (-1: how many unknown) */
	int *heap, nheap;
	int psize;
	long long pages;
	struct dp_rbmap *map; /* per CPU: its mapping, where it has one */
	int mapped;           /* CPUs read in place */
	int map_pid;          /* the process that mapped them */
};

/*
 * Open the buffers of ti with the formats of the given systems (a
 * NULL-terminated list; ftrace is added), the saved comms loaded. NULL,
 * or what failed (errno set where it tells more). dir: the tracing
 * directory when the library was pointed at one, else NULL. With map,
 * each CPU's buffer is mapped where the kernel allows it (rb->mapped
 * tells how many were), else every page is copied.
 */
const char *dp_rawbuf_open(struct dp_rawbuf *rb, struct tracefs_instance *ti,
			   const char *const *systems, const char *dir, int map);
/* The same buffers for their pages only (dp_rawbuf_pages): the
 * sub-buffer layout from header_page, no formats, no kallsyms. */
const char *dp_rawbuf_open_pages(struct dp_rawbuf *rb, struct tracefs_instance *ti);
void dp_rawbuf_close(struct dp_rawbuf *rb);
/*
 * Load what the buffers have (when nothing, wait up to ms and try once
 * more), then hand the sink the lost marks taken and every event loaded,
 * in time order (a sink's stop is not honoured here: what is loaded is
 * handed out; the data is valid during its call). Returns the CPUs that
 * had events, or -1 when a signal came.
 */
struct dp_sink;
int dp_rawbuf_feed(struct dp_rawbuf *rb, int ms, struct dp_sink *k);

/*
 * The sub-buffers themselves, as the kernel wrote them (a trace.dat's
 * pages, datwriter.c): every whole page the buffers have now, at most max
 * per CPU, each handed to sink (which returns 0, or -1 to stop: its errno
 * is kept); when none, wait up to ms and try once more. Returns the pages
 * handed out, -1 when a signal came, -2 when the sink failed. Events are
 * not split: use this or dp_rawbuf_feed on one rawbuf, not both.
 */
typedef int (*dp_page_sink)(void *ctx, int cpu, const void *page, int len);
long dp_rawbuf_pages(struct dp_rawbuf *rb, int ms, int max, dp_page_sink sink, void *ctx);

#endif
