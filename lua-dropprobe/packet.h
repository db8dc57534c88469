/*
 * packet.h - the headers of a dropped packet from bytes a probe fetched at
 * the drop: IPv4 and IPv6 (extension headers skipped), TCP, UDP, ICMP and
 * ICMPv6. Pure C, no Lua, fuzzed with the text parser's target.
 */
#ifndef DROPPROBE_PACKET_H
#define DROPPROBE_PACKET_H

#include <stddef.h>

struct dp_packet {
	int family;         /* 4 or 6 */
	char saddr[48], daddr[48];
	int proto;          /* IPPROTO_* of the transport header found */
	int sport, dport;   /* TCP, UDP; -1 otherwise */
	int type, code;     /* ICMP, ICMPv6; -1 otherwise */
	unsigned len;       /* the IP datagram's length as its header says */
};

/*
 * Decode from buf (n bytes of the packet from skb->head) with the network
 * header at nh bytes from head. Returns 1 when an IP header was there (the
 * transport fields set when its header was there too), 0 otherwise.
 */
int dp_packet_decode(const unsigned char *buf, size_t n, size_t nh, struct dp_packet *p);

#endif
