/*
 * raw.h - the binary decoder shared by raw mode (raw.c, live per-CPU
 * buffers) and trace.dat files (dat.c, through libtracecmd).
 */
#ifndef DROPPROBE_RAW_H
#define DROPPROBE_RAW_H

#include "pipe.h"

struct tep_handle;
struct tep_event;
struct tep_format_field;
struct kbuffer;
struct dp_dat;

enum fkind { FK_UNSIGNED, FK_POINTER, FK_SIGNED, FK_SYMBOL, FK_ENUM, FK_STRING, FK_BYTES };

struct fdesc {
	struct tep_format_field *f;
	enum fkind kind;
	int name_idx; /* index of the field name in the event's name table */
	int addr_idx; /* "<name>_addr" for FK_SYMBOL */
	int has_syms;
	int syms_idx; /* the field's symbol table in the event's cache table */
};

struct evinfo {
	int id;
	struct tep_event *ev;
	int nf;
	struct fdesc *fd;
	int cache_ref; /* Lua table: [1]=name, [2]=system, [3..]=field names, syms={} */
};

struct dp_raw {
	struct tep_handle *tep;
	int ncpu;
	int *fds;
	struct kbuffer **kb;
	void **page;
	void **next;          /* current event of the loaded page, or NULL */
	unsigned long long *next_ts;
	long long *nread_cpu; /* per CPU */
	int psize;
	int stack_id;
	struct tep_format_field *stack_size, *stack_caller;
	struct tep_format_field *common_pid, *common_flags, *common_preempt;
	struct evinfo *evs;
	int nevs;
	int cmdlines_reloaded;
	struct dp_dat *dat;  /* trace.dat input (dat.c), or NULL */
	int cache_ref; /* registry: { ev = {[id]=cache}, sym = {[addr]=str}, comm = {[pid]=str} } */
	long long nread, unknown, orphan_stacks, pages;
};

/* Set the stack event and common fields from r->tep; NULL or what is missing. */
const char *dp_raw_init_tep(struct dp_raw *r);
/* The registry table of interned names, symbols and comms. */
void dp_raw_new_cache(lua_State *L, struct dp_raw *r);
int dp_raw_cache(lua_State *L, struct dp_raw *r);
/* Push the decoder's four working tables (symbols, comms, events, the
 * record metatable) once per batch; returns the index of the first. */
int dp_raw_push_cache(lua_State *L, struct dp_raw *r);
/* Decode one event into a queued record, or join a kernel_stack to the
 * record before it on the CPU. cache is what dp_raw_push_cache returned. */
void dp_raw_decode(lua_State *L, struct dp_pipe *p, struct dp_raw *r, int refs, int cache,
		   int cpu, void *data, int size, unsigned long long ts);
void dp_raw_free(struct dp_raw *r);

/* dat.c */
void dp_dat_close(struct dp_raw *r);
int dp_dat_fill(lua_State *L, struct dp_pipe *p, int refs);
void dp_dat_open(lua_State *L);

#endif
