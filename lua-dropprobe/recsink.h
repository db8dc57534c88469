/*
 * recsink.h - the record sink: the sink (sink.h) that turns each binary
 * event into a record with the decoder (decode.c) and gives it, or the
 * stack it carries, to the joiner (join.c). Live raw mode (src_raw.c) and
 * trace.dat (src_dat.c) read through it; what it makes is what the Pipe
 * hands out. Process names a live decoder did not know are looked up
 * after the batch (comm.c).
 */
#ifndef DROPPROBE_RECSINK_H
#define DROPPROBE_RECSINK_H

#include "comm.h"
#include "decode.h"
#include "sink.h"
#include "source.h"

struct dp_recsink {
	struct dp_sink sink;
	lua_State *L;
	struct dp_decoder *dec;
	struct dp_fill *f;
	struct dp_misses *misses; /* a live decoder's, or NULL */
	int base;  /* the decoder's working tables (dp_decode_begin) */
	int hold;  /* records wait for a stack that may follow */
	int batch; /* stop after this many events (0: never) */
	int n;     /* events taken */
};

/* Start a batch into f's joiner: the decoder's working tables pushed. */
void dp_recsink_begin(lua_State *L, struct dp_recsink *r, struct dp_decoder *dec,
		      struct dp_fill *f, struct dp_misses *misses, int hold, int batch);
/* End it: the tables popped, the missed names put into the records. */
void dp_recsink_end(struct dp_recsink *r);

#endif
