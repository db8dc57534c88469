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
	unsigned char sbin[16], dbin[16]; /* the addresses as bytes (4 or 16) */
	int bad;            /* the IP header is malformed (IHL < 5): addresses only */
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
/* The same without the addresses as text (saddr, daddr left empty): for
 * counting, which keys on the bytes. */
int dp_packet_parse(const unsigned char *buf, size_t n, size_t nh, struct dp_packet *p);

/* The name of an IP protocol number as reports give it ("tcp", "udp",
 * "icmp", "icmpv6", "sctp"), or NULL for one without a name here. */
const char *dp_packet_proto_name(int proto);

/* An address or a prefix of addresses: 127.0.0.1, ::1, [::1], 127.0.0.0/8,
 * fe80::/10 (a plain address is a prefix of all its bits). */
struct dp_prefix {
	int family; /* 4 or 6 */
	unsigned char addr[16];
	int bits;
};

/* Parse s into p: 1, or 0 when s is no address or prefix (names are the
 * caller's to resolve first). */
int dp_prefix_parse(const char *s, struct dp_prefix *p);
/* Whether addr (4 or 16 bytes of family) is in the prefix. */
int dp_prefix_match(const struct dp_prefix *p, int family, const unsigned char *addr);

#endif
