/*
 * pktfilter.h - a packet condition in tcpdump's filter language (pcap-filter(7)),
 * compiled once by libpcap for raw IP packets and run on the bytes a drop
 * probe read, in C, before any record is made.
 */
#ifndef DROPPROBE_PKTFILTER_H
#define DROPPROBE_PKTFILTER_H

#include <stddef.h>

struct dp_pktfilter;

/* Compile expr; NULL with libpcap's message in err (errlen bytes) when it
 * does not compile. */
struct dp_pktfilter *dp_pktfilter_compile(const char *expr, char *err, size_t errlen);
/* Whether the packet (its first byte is its IP header; caplen bytes of
 * origlen) passes. */
int dp_pktfilter_match(const struct dp_pktfilter *f, const unsigned char *pkt, size_t caplen,
		       size_t origlen);
void dp_pktfilter_free(struct dp_pktfilter *f);

#endif
