/*
 * pcapng.c - pcapng blocks built into a buffer (see pcapng.h). Every block
 * is: type (4), total length (4), body, total length again (4); bodies and
 * option values are padded to 4 bytes with zeros; an option list ends with
 * opt_endofopt (code 0, length 0).
 */
#include <string.h>

#include "pcapng.h"

#define PAD4(n) (((n) + 3u) & ~(size_t)3u)

/* bytes an option takes: code, length, value padded; none for an empty one */
static size_t opt_size(size_t len)
{
	return len ? 4 + PAD4(len) : 0;
}

static unsigned char *put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
	return p + 4;
}

static unsigned char *put16(unsigned char *p, uint16_t v)
{
	memcpy(p, &v, 2);
	return p + 2;
}

/* an option with its value and zero padding */
static unsigned char *put_opt(unsigned char *p, uint16_t code, const void *v, size_t len)
{
	if (!len)
		return p;
	p = put16(p, code);
	p = put16(p, (uint16_t)len);
	memcpy(p, v, len);
	memset(p + len, 0, PAD4(len) - len);
	return p + PAD4(len);
}

/* options, when there are any, end with opt_endofopt */
static size_t opts_size(size_t a, size_t b)
{
	size_t n = opt_size(a) + opt_size(b);
	return n ? n + 4 : 0;
}

size_t dp_pcapng_shb_size(size_t applen)
{
	/* type, length, magic, major, minor, section length (8), options, length */
	return 4 + 4 + 4 + 2 + 2 + 8 + opts_size(applen, 0) + 4;
}

size_t dp_pcapng_idb_size(size_t namelen)
{
	/* type, length, link type, reserved, snaplen, options, length */
	return 4 + 4 + 2 + 2 + 4 + opts_size(namelen, 1) + 4;
}

size_t dp_pcapng_epb_size(size_t caplen, size_t commentlen)
{
	/* type, length, interface, ts high, ts low, caplen, origlen, data, options, length */
	return 4 + 4 + 4 + 4 + 4 + 4 + 4 + PAD4(caplen) + opts_size(commentlen, 0) + 4;
}

/* the closing of a block: its options' end marker, the length again */
static size_t finish(unsigned char *buf, unsigned char *p, int opts, size_t len)
{
	if (opts) {
		p = put16(p, 0);
		p = put16(p, 0);
	}
	p = put32(p, (uint32_t)len);
	return (size_t)(p - buf) == len ? len : 0;
}

size_t dp_pcapng_shb(unsigned char *buf, size_t cap, const char *app, size_t applen)
{
	size_t len;
	uint64_t section = UINT64_MAX; /* -1: not given, the writer streams */
	unsigned char *p = buf;
	if (!app)
		applen = 0;
	if (applen > DP_PCAPNG_OPT_MAX || (len = dp_pcapng_shb_size(applen)) > cap)
		return 0;
	p = put32(p, DP_PCAPNG_SHB);
	p = put32(p, (uint32_t)len);
	p = put32(p, DP_PCAPNG_MAGIC);
	p = put16(p, 1); /* major */
	p = put16(p, 0); /* minor */
	memcpy(p, &section, 8);
	p += 8;
	p = put_opt(p, 4, app, applen); /* shb_userappl */
	return finish(buf, p, applen > 0, len);
}

size_t dp_pcapng_idb(unsigned char *buf, size_t cap, uint16_t linktype, uint32_t snaplen,
		     const char *name, size_t namelen)
{
	size_t len;
	unsigned char tsresol = 9; /* 10^-9 s */
	unsigned char *p = buf;
	if (!name)
		namelen = 0;
	if (namelen > DP_PCAPNG_OPT_MAX || (len = dp_pcapng_idb_size(namelen)) > cap)
		return 0;
	p = put32(p, DP_PCAPNG_IDB);
	p = put32(p, (uint32_t)len);
	p = put16(p, linktype);
	p = put16(p, 0);
	p = put32(p, snaplen);
	p = put_opt(p, 2, name, namelen); /* if_name */
	p = put_opt(p, 9, &tsresol, 1);   /* if_tsresol */
	return finish(buf, p, 1, len);
}

size_t dp_pcapng_epb(unsigned char *buf, size_t cap, uint32_t ifid, uint64_t ts_ns,
		     const unsigned char *data, size_t caplen, uint32_t origlen,
		     const char *comment, size_t commentlen)
{
	size_t len;
	unsigned char *p = buf;
	if (!comment)
		commentlen = 0;
	if (!data)
		caplen = 0;
	if (commentlen > DP_PCAPNG_OPT_MAX || caplen > UINT32_MAX - 64 ||
	    (len = dp_pcapng_epb_size(caplen, commentlen)) > cap || len > UINT32_MAX)
		return 0;
	if (origlen < caplen)
		origlen = (uint32_t)caplen; /* never less than was captured */
	p = put32(p, DP_PCAPNG_EPB);
	p = put32(p, (uint32_t)len);
	p = put32(p, ifid);
	p = put32(p, (uint32_t)(ts_ns >> 32));
	p = put32(p, (uint32_t)ts_ns);
	p = put32(p, (uint32_t)caplen);
	p = put32(p, origlen);
	if (caplen)
		memcpy(p, data, caplen);
	memset(p + caplen, 0, PAD4(caplen) - caplen);
	p += PAD4(caplen);
	p = put_opt(p, 1, comment, commentlen); /* opt_comment */
	return finish(buf, p, commentlen > 0, len);
}
