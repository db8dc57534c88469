/*
 * recsink.c - the record sink (see recsink.h).
 */
#include "recsink.h"

static int rec_event(struct dp_sink *k, int cpu, void *data, int size, unsigned long long ts)
{
	struct dp_recsink *r = (struct dp_recsink *)k;
	lua_State *L = r->L;
	struct dp_fill *f = r->f;
	int d = dp_decode(L, r->dec, r->base, f->keys, cpu, data, size, ts, r->hold);
	if (d == DP_DEC_RECORD) {
		int ref = dp_join_record(L, f->join, f->refs, f->keys, cpu, r->hold);
		if (r->dec->missed_pid >= 0) {
			if (r->misses)
				dp_misses_add(L, r->misses, ref, r->dec->missed_pid);
			r->dec->missed_pid = -1;
		}
	} else if (d == DP_DEC_STACK) {
		dp_join_stack(L, f->join, f->refs, f->keys, cpu);
	}
	return ++r->n == r->batch;
}

static void rec_lost(struct dp_sink *k, int cpu, long long n)
{
	struct dp_recsink *r = (struct dp_recsink *)k;
	dp_join_lost(r->L, r->f->join, cpu, n);
}

static void rec_boundary(struct dp_sink *k)
{
	dp_join_release(((struct dp_recsink *)k)->f->join);
}

void dp_recsink_begin(lua_State *L, struct dp_recsink *r, struct dp_decoder *dec,
		      struct dp_fill *f, struct dp_misses *misses, int hold, int batch)
{
	r->sink.event = rec_event;
	r->sink.lost = rec_lost;
	r->sink.boundary = rec_boundary;
	r->L = L;
	r->dec = dec;
	r->f = f;
	r->misses = misses;
	r->hold = hold;
	r->batch = batch;
	r->n = 0;
	r->base = dp_decode_begin(L, dec);
}

void dp_recsink_end(struct dp_recsink *r)
{
	lua_State *L = r->L;
	dp_decode_end(L);
	if (r->misses && r->misses->n) {
		dp_decoder_comms(L, r->dec);
		dp_misses_fix(L, r->misses, r->dec->tep, r->f->refs, r->f->keys, lua_gettop(L));
		lua_pop(L, 1);
	}
}
