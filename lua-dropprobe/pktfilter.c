/*
 * pktfilter.c - tcpdump's filter language on dropped packets (see
 * pktfilter.h): pcap_compile on a dead handle of link type raw IP, then
 * pcap_offline_filter, libpcap's own BPF interpreter, per packet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>

#include "pktfilter.h"

/* the most bytes a packet given to the filter has (the probe reads 512) */
#define SNAPLEN 65535

struct dp_pktfilter {
	struct bpf_program prog;
};

struct dp_pktfilter *dp_pktfilter_compile(const char *expr, char *err, size_t errlen)
{
	pcap_t *p = pcap_open_dead(DLT_RAW, SNAPLEN);
	struct dp_pktfilter *f;
	if (!p) {
		snprintf(err, errlen, "libpcap: cannot make a handle");
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		pcap_close(p);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (pcap_compile(p, &f->prog, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		snprintf(err, errlen, "%s", pcap_geterr(p));
		pcap_close(p);
		free(f);
		return NULL;
	}
	pcap_close(p);
	return f;
}

int dp_pktfilter_match(const struct dp_pktfilter *f, const unsigned char *pkt, size_t caplen,
		       size_t origlen)
{
	struct pcap_pkthdr h;
	memset(&h, 0, sizeof(h));
	if (caplen > SNAPLEN)
		caplen = SNAPLEN;
	h.caplen = (bpf_u_int32)caplen;
	h.len = (bpf_u_int32)(origlen < caplen ? caplen : origlen);
	return pcap_offline_filter(&f->prog, &h, pkt) != 0;
}

void dp_pktfilter_free(struct dp_pktfilter *f)
{
	if (!f)
		return;
	pcap_freecode(&f->prog);
	free(f);
}
