/*
 * pcapng.h - the blocks of a pcapng file (the PCAP Next Generation capture
 * file format, draft-ietf-opsawg-pcapng): a section header, an interface
 * description and an enhanced packet block, each built whole into a
 * caller's buffer in host byte order (the section header's byte-order
 * magic tells readers which). Pure C, no I/O, fuzzed with the packet
 * decoder.
 */
#ifndef DROPPROBE_PCAPNG_H
#define DROPPROBE_PCAPNG_H

#include <stddef.h>
#include <stdint.h>

#define DP_PCAPNG_SHB 0x0A0D0D0Au
#define DP_PCAPNG_IDB 0x00000001u
#define DP_PCAPNG_EPB 0x00000006u
#define DP_PCAPNG_MAGIC 0x1A2B3C4Du
/* LINKTYPE_RAW: the packet starts at its IPv4 or IPv6 header */
#define DP_PCAPNG_LINKTYPE_RAW 101
/* an option's value is at most this long (its length field is 16 bits) */
#define DP_PCAPNG_OPT_MAX 65535

/* The bytes a block of these sizes takes, options included. */
size_t dp_pcapng_shb_size(size_t applen);
size_t dp_pcapng_idb_size(size_t namelen);
size_t dp_pcapng_epb_size(size_t caplen, size_t commentlen);

/*
 * Build a block into buf (cap bytes). Each returns the block's length, or 0
 * when it does not fit in cap or a length is out of range. Strings are
 * given with their length (no NUL needed); a NULL or empty one leaves its
 * option out.
 *   shb: shb_userappl = app.
 *   idb: the link type, snaplen, if_name = name, if_tsresol = 9 (ns).
 *   epb: interface id, timestamp in ns, the captured bytes, the original
 *        length, opt_comment = comment.
 */
size_t dp_pcapng_shb(unsigned char *buf, size_t cap, const char *app, size_t applen);
size_t dp_pcapng_idb(unsigned char *buf, size_t cap, uint16_t linktype, uint32_t snaplen,
		     const char *name, size_t namelen);
size_t dp_pcapng_epb(unsigned char *buf, size_t cap, uint32_t ifid, uint64_t ts_ns,
		     const unsigned char *data, size_t caplen, uint32_t origlen,
		     const char *comment, size_t commentlen);

#endif
