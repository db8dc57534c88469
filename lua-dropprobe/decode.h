/*
 * decode.h - the decoder: one binary event (libtraceevent's formats) into
 * one record of the shape in record.h, or a kernel_stack entry into a
 * stack table. It knows nothing of pipes, files or CPUs' order: a source
 * hands it events, and gives what it returns to the joiner.
 */
#ifndef DROPPROBE_DECODE_H
#define DROPPROBE_DECODE_H

#include "packet.h"
#include "util.h"

#define DP_HOSTS_MAX 16

struct tep_handle;
struct tep_format_field;
struct dp_ksyms;
struct dp_evinfo;
struct dp_pktfilter;

struct dp_decoder {
	struct tep_handle *tep;
	struct dp_ksyms *syms; /* tep's symbols (its owner's: kallsyms read once per tep) */
	int own_tep;   /* freed with the decoder (live); a trace.dat's is libtracecmd's */
	int from_file; /* pids of another time or host: no /proc, no saved_cmdlines */
	int native;    /* the records are in this host's byte order: numbers read in place */
	int stack_id;
	struct tep_format_field *stack_size, *stack_caller;
	struct tep_format_field *common_pid, *common_flags, *common_preempt;
	struct dp_evinfo **byid; /* event id -> what decoding it needs */
	int nbyid;
	int cache_ref;   /* registry: { ev, sym, comm, over, meta } */
	int missed_pid;  /* set by dp_decode: the comm of this pid was unknown */
	long long unknown, filtered;
	/* only drops whose packet is from or to this port / address (-1, "": any) */
	int want_port;
	struct dp_prefix hosts[DP_HOSTS_MAX];
	int nhosts;
	/* only drops whose packet passes this tcpdump filter expression, or NULL */
	struct dp_pktfilter *match;
	/* columns of the latency flags this kernel prints: 5 ("..s1."), 4
	 * where it has no migrate-disable column ("..s1", 5.10); 0 is 5 */
	int flag_cols;
};

/* The decoder's hosts from the list of prefixes at idx (strings); an
 * error for one that does not parse. */
void dp_decoder_hosts(lua_State *L, struct dp_decoder *d, int idx);
/* The decoder's packet filter from the expression at idx (a string, or
 * nil for none); an error with libpcap's message for one that does not
 * compile. */
void dp_decoder_match(lua_State *L, struct dp_decoder *d, int idx);

/* Whether a packet passes the decoder's port, host and filter expression
 * (have: an IP header was found; ip: the n bytes from it on). */
int dp_decoder_wants(const struct dp_decoder *d, const struct dp_packet *p, int have,
		     const unsigned char *ip, size_t n);
/* Whether the decoder has any packet condition. */
int dp_decoder_has_condition(const struct dp_decoder *d);
/* Push a packet as rec.packet has it (family, saddr, daddr, proto, ports). */
void dp_packet_push(lua_State *L, const struct dp_packet *p);

enum { DP_DEC_SKIP = 0, DP_DEC_RECORD, DP_DEC_STACK };

/*
 * Set up a decoder over the tep of syms (whose owner keeps syms as long
 * as the decoder lives; addresses are named through it); symbols (a stack index, or 0) is
 * { event = { field = {[n]=name} } } for fields the formats name nothing
 * for (a kprobe's reason). Returns NULL, or what the formats lack.
 */
const char *dp_decoder_init(lua_State *L, struct dp_decoder *d, struct dp_ksyms *syms,
			    int own_tep, int symbols);
void dp_decoder_free(lua_State *L, struct dp_decoder *d);

/* Push the decoder's working tables for a batch; returns the base index
 * to pass to dp_decode. dp_decode_end pops them. */
int dp_decode_begin(lua_State *L, struct dp_decoder *d);
void dp_decode_end(lua_State *L);

/*
 * Decode one event: DP_DEC_RECORD (the record pushed), DP_DEC_STACK (the
 * stack table pushed), DP_DEC_SKIP (an event of no known format, counted;
 * nothing pushed). keys is the stack index of the keys table; more, the
 * keys the caller may add to a record after it is made (a stack it joins, a
 * path's steps), for which the record is made with room: never grown.
 */
int dp_decode(lua_State *L, struct dp_decoder *d, int base, int keys, int cpu, void *data,
	      int size, unsigned long long ts, int more);

/* Push the record metatable of this decoder's records. */
void dp_decoder_meta(lua_State *L, struct dp_decoder *d);
/* The commtab of the decoder (pid -> comm) pushed. */
void dp_decoder_comms(lua_State *L, struct dp_decoder *d);

#endif
