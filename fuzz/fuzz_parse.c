/*
 * fuzz_parse.c - libFuzzer target over the text trace parser (parse.c):
 * any bytes, split into lines as the reader splits them, every line parsed
 * every payload pair walked, and every payload matched against two print
 * formats' literal text (kfree_skb's, icmp_send's) as the text decoder
 * matches them; and the same bytes through the packet header decoder and the
 * host-prefix parser, and the packet from its network header on written
 * as a pcapng packet block (pcapng.c), read back. Crashes and sanitizer reports are findings;
 * each one found becomes a fixture in spec/fixtures/.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../lua-dropprobe/packet.h"
#include "../lua-dropprobe/pcapng.h"
#include "../lua-dropprobe/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SP(s) {s, sizeof(s) - 1}
static const struct dp_span kfree_lits[] = {SP("skbaddr="), SP(" rx_sk="), SP(" protocol="),
					     SP(" location="), SP(" reason: ")};
static const struct dp_span icmp_lits[] = {SP("icmp_send: type="), SP(", code="), SP(". From "),
					    SP(":"), SP(" to "), SP(":"), SP(" ulen="),
					    SP(" skbaddr=")};

static void match(struct dp_span payload, const struct dp_span *lits, int n, struct dp_span tail)
{
	struct dp_span vals[16];
	unsigned long long u;
	if (!dp_template_match(payload, lits, n, tail, vals))
		return;
	for (int i = 0; i < n; i++) {
		if (vals[i].p < payload.p || vals[i].p + vals[i].n > payload.p + payload.n)
			__builtin_trap();
		(void)dp_span_hex(vals[i], &u);
	}
}

/* The bytes from the network header on as an enhanced packet block, the
 * rest of the input as its comment: the block must say its own length at
 * both ends, in a multiple of 4, hold the bytes, and fit exactly. */
static void pcapng_block(const uint8_t *data, size_t size, size_t nh, unsigned origlen)
{
	static unsigned char buf[20000];
	size_t cap = nh < size ? size - nh : 0, clen = size / 3, len;
	uint32_t a, b, c;
	len = dp_pcapng_epb(buf, sizeof(buf), 0, 12345, data + nh, cap, origlen, (const char *)data, clen);
	if (len != dp_pcapng_epb_size(cap, clen) || len % 4)
		__builtin_trap();
	memcpy(&a, buf + 4, 4);
	memcpy(&b, buf + len - 4, 4);
	memcpy(&c, buf + 20, 4);
	if (a != len || b != len || c != cap || (cap && memcmp(buf + 28, data + nh, cap)))
		__builtin_trap();
	/* one byte short of room: refused, never written past */
	if (len && dp_pcapng_epb(buf, len - 1, 0, 0, data + nh, cap, origlen, (const char *)data, clen))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	size_t start = 0;
	struct dp_packet pk;
	memset(&pk, 0, sizeof(pk));
	/* the same bytes as a packet fetched at a drop: the header decoder */
	if (size > 1 && dp_packet_decode(data + 1, size - 1, data[0] % 80, &pk) &&
	    (pk.family != 4 && pk.family != 6))
		__builtin_trap();
	if (size > 1)
		pcapng_block(data + 1, size - 1, data[0] % 80, pk.len);
	/* the first line as a host condition (--host): a prefix that parses
	 * matches the address it was made of */
	{
		char buf[80];
		size_t n = 0;
		struct dp_prefix pf;
		while (n < size && n < sizeof(buf) - 1 && s[n] != '\n' && s[n] != 0) {
			buf[n] = s[n];
			n++;
		}
		buf[n] = 0;
		if (dp_prefix_parse(buf, &pf) &&
		    ((pf.family != 4 && pf.family != 6) || pf.bits < 0 ||
		     pf.bits > (pf.family == 4 ? 32 : 128) || !dp_prefix_match(&pf, pf.family, pf.addr)))
			__builtin_trap();
	}
	for (size_t i = 0; i <= size; i++) {
		if (i == size || s[i] == '\n') {
			struct dp_line ln;
			enum dp_line_kind k = dp_parse_line(s + start, i - start, &ln);
			if (k == DP_LINE_EVENT || k == DP_LINE_STACK) {
				struct dp_span key, val;
				size_t pos = 0;
				long long v;
				/* every span must lie inside the line */
				if (ln.comm.p < s + start || ln.comm.p + ln.comm.n > s + i ||
				    ln.payload.p + ln.payload.n > s + i ||
				    (!ln.fn_ip.n && ln.name.p + ln.name.n > s + i))
					__builtin_trap();
				if (ln.fn_ip.n && (ln.fn_ip.p < s + start || ln.fn_parent.p < s + start ||
						   ln.fn_parent.p + ln.fn_parent.n > s + i))
					__builtin_trap();
				while (dp_payload_next(ln.payload, &pos, &key, &val)) {
					if (key.p < ln.payload.p || val.p + val.n > ln.payload.p + ln.payload.n)
						__builtin_trap();
					unsigned long long u;
					(void)dp_span_integer(val, &v);
					(void)dp_span_number(val, &v, &u);
				}
				if (pos > ln.payload.n)
					__builtin_trap();
				match(ln.payload, kfree_lits, 5, (struct dp_span)SP(""));
				match(ln.payload, icmp_lits, 8, (struct dp_span)SP(""));
			} else if (k == DP_LINE_FRAME) {
				if (ln.frame.p + ln.frame.n > s + i)
					__builtin_trap();
			}
			start = i + 1;
		}
	}
	return 0;
}
