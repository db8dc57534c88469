/*
 * packet.c - headers of a dropped packet (see packet.h).
 */
#include "packet.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned be16(const unsigned char *b)
{
	return (unsigned)b[0] << 8 | b[1];
}

static void transport(const unsigned char *buf, size_t n, size_t off, int proto,
		      struct dp_packet *p)
{
	p->proto = proto;
	switch (proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		if (off + 4 <= n) {
			p->sport = (int)be16(buf + off);
			p->dport = (int)be16(buf + off + 2);
		}
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (off + 2 <= n) {
			p->type = buf[off];
			p->code = buf[off + 1];
		}
		break;
	default:
		break;
	}
}

int dp_packet_parse(const unsigned char *buf, size_t n, size_t nh, struct dp_packet *p)
{
	const unsigned char *ip;
	memset(p, 0, sizeof(*p));
	p->sport = p->dport = p->type = p->code = -1;
	if (nh >= n || n - nh < 20)
		return 0;
	ip = buf + nh;
	if ((ip[0] >> 4) == 4) {
		size_t ihl = (size_t)(ip[0] & 15) * 4;
		p->family = 4;
		p->len = be16(ip + 2);
		memcpy(p->sbin, ip + 12, 4);
		memcpy(p->dbin, ip + 16, 4);
		p->proto = ip[9];
		if (ihl < 20) { /* a header too short to be one: what it has */
			p->bad = 1;
			return 1;
		}
		/* a fragment after the first has no transport header */
		if ((be16(ip + 6) & 0x1fff) == 0)
			transport(buf, n, nh + ihl, ip[9], p);
		else
			p->proto = ip[9];
		return 1;
	}
	if ((ip[0] >> 4) == 6 && n - nh >= 40) {
		size_t off = nh + 40;
		int next = ip[6];
		p->family = 6;
		p->len = be16(ip + 4) + 40;
		memcpy(p->sbin, ip + 8, 16);
		memcpy(p->dbin, ip + 24, 16);
		for (int hops = 0; hops < 8; hops++) {
			switch (next) {
			case 0:  /* hop-by-hop */
			case 43: /* routing */
			case 60: /* destination options */
				if (off + 2 > n)
					return 1;
				next = buf[off];
				off += ((size_t)buf[off + 1] + 1) * 8;
				continue;
			case 44: /* fragment: only the first has the transport header */
				if (off + 8 > n)
					return 1;
				if (be16(buf + off + 2) & 0xfff8) {
					p->proto = buf[off];
					return 1;
				}
				next = buf[off];
				off += 8;
				continue;
			case 51: /* authentication header */
				if (off + 2 > n)
					return 1;
				next = buf[off];
				off += ((size_t)buf[off + 1] + 2) * 4;
				continue;
			default:
				break;
			}
			break;
		}
		transport(buf, n, off, next, p);
		return 1;
	}
	return 0;
}

int dp_packet_decode(const unsigned char *buf, size_t n, size_t nh, struct dp_packet *p)
{
	int af;
	if (!dp_packet_parse(buf, n, nh, p))
		return 0;
	af = p->family == 4 ? AF_INET : AF_INET6;
	inet_ntop(af, p->sbin, p->saddr, sizeof(p->saddr));
	inet_ntop(af, p->dbin, p->daddr, sizeof(p->daddr));
	return 1;
}

const char *dp_packet_proto_name(int proto)
{
	switch (proto) {
	case IPPROTO_TCP: return "tcp";
	case IPPROTO_UDP: return "udp";
	case IPPROTO_ICMP: return "icmp";
	case IPPROTO_ICMPV6: return "icmpv6";
	case IPPROTO_SCTP: return "sctp";
	default: return NULL;
	}
}

int dp_prefix_parse(const char *s, struct dp_prefix *p)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	long bits = -1;
	memset(p, 0, sizeof(*p));
	if (n == 0 || n >= sizeof(buf))
		return 0;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (buf[0] == '[' && n > 2 && buf[n - 1] == ']') { /* [v6] */
		memmove(buf, buf + 1, n - 2);
		buf[n - 2] = 0;
	}
	if (slash) {
		size_t digits = strspn(slash + 1, "0123456789");
		if (digits == 0 || digits > 3 || slash[1 + digits])
			return 0; /* digits only: no sign, no space */
		bits = strtol(slash + 1, NULL, 10);
	}
	if (inet_pton(AF_INET, buf, p->addr) == 1) {
		p->family = 4;
		p->bits = bits < 0 ? 32 : (int)bits;
		return bits <= 32;
	}
	if (inet_pton(AF_INET6, buf, p->addr) == 1) {
		p->family = 6;
		p->bits = bits < 0 ? 128 : (int)bits;
		return bits <= 128;
	}
	return 0;
}

int dp_prefix_match(const struct dp_prefix *p, int family, const unsigned char *addr)
{
	int full, rest;
	if (p->family != family)
		return 0;
	full = p->bits / 8;
	rest = p->bits % 8;
	if (memcmp(p->addr, addr, (size_t)full) != 0)
		return 0;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));
		if ((p->addr[full] & mask) != (addr[full] & mask))
			return 0;
	}
	return 1;
}
