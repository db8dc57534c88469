/*
 * sink.h - where an input's events go. An input (an instance's per-CPU
 * buffers, rawbuf.c; a trace.dat, datin.c) reads binary events and hands
 * each to a sink, in time order, with the kernel's lost marks; the sink
 * decides what an event becomes: a record for the joiner (recsink.c), a
 * count (count.c), a step of a packet's path (src_path.c). No Lua here.
 *
 * A sink is a struct that starts with struct dp_sink; its functions get
 * that first member back.
 */
#ifndef DROPPROBE_SINK_H
#define DROPPROBE_SINK_H

struct dp_sink {
	/* One event of cpu, its bytes as the ring buffer holds them (valid
	 * during the call). Nonzero: stop after this one (a batch is full;
	 * the input goes on from the next event when fed again). */
	int (*event)(struct dp_sink *k, int cpu, void *data, int size, unsigned long long ts);
	/* The kernel lost n events on cpu before what comes next (n < 0: an
	 * unknown number). */
	void (*lost)(struct dp_sink *k, int cpu, long long n);
	/* One buffer ended and another begins (a trace.dat's instances): no
	 * stack after this belongs to an event before it. May be NULL. */
	void (*boundary)(struct dp_sink *k);
};

#endif
