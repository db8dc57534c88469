/*
 * parse.c - the text trace parser (see parse.h). Pure C, no allocation.
 *
 * A default trace line is
 *   "<comm>-<pid> [(<tgid>)] [<cpu>] <flags> <secs>.<usecs>: <name>: <payload>"
 * where comm may hold spaces and dashes, so the line is anchored on the
 * "-<pid> [<cpu>]" part, not on the left edge.
 */
#include "parse.h"

#include <string.h>

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

int dp_span_integer(struct dp_span s, long long *v)
{
	size_t i = 0;
	int neg = 0;
	unsigned long long acc = 0;
	if (s.n == 0)
		return 0;
	if (s.p[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == s.n || s.n - i > 19)
		return 0;
	for (; i < s.n; i++) {
		if (!is_digit(s.p[i]))
			return 0;
		acc = acc * 10 + (unsigned long long)(s.p[i] - '0');
	}
	if (acc > (unsigned long long)INT64_MAX)
		return 0;
	*v = neg ? -(long long)acc : (long long)acc;
	return 1;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* hex digits p[0..n) into *u; 0 if one is not a hex digit or n > 16 */
static int span_hex(const char *p, size_t n, unsigned long long *u)
{
	unsigned long long acc = 0;
	if (n == 0 || n > 16)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int h = hex_value(p[i]);
		if (h < 0)
			return 0;
		acc = acc << 4 | (unsigned long long)h;
	}
	*u = acc;
	return 1;
}

int dp_span_number(struct dp_span s, long long *v, unsigned long long *u)
{
	if (dp_span_integer(s, v)) {
		/* 16 digits with a leading 0 are an address, not a number */
		if (!(s.n == 16 && s.p[0] == '0'))
			return DP_NUM_INT;
	}
	if (s.n == 16 && span_hex(s.p, s.n, u))
		return DP_NUM_WIDE;
	if (s.n > 2 && s.p[0] == '0' && (s.p[1] == 'x' || s.p[1] == 'X') &&
	    span_hex(s.p + 2, s.n - 2, u)) {
		if (*u > (unsigned long long)INT64_MAX)
			return DP_NUM_WIDE;
		*v = (long long)*u;
		return DP_NUM_INT;
	}
	if (s.n == 19 || s.n == 20) { /* unsigned decimal beyond INT64_MAX */
		unsigned long long acc = 0;
		for (size_t i = 0; i < s.n; i++) {
			unsigned d;
			if (!is_digit(s.p[i]))
				return DP_NUM_NONE;
			d = (unsigned)(s.p[i] - '0');
			if (acc > (UINT64_MAX - d) / 10)
				return DP_NUM_NONE;
			acc = acc * 10 + d;
		}
		*u = acc;
		return DP_NUM_WIDE;
	}
	return DP_NUM_NONE;
}

void dp_hex16(char out[16], unsigned long long v)
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--, v >>= 4)
		out[i] = digits[v & 15];
}

/* "CPU:N [LOST M EVENTS]" */
static int parse_lost(const char *s, size_t n, struct dp_line *out)
{
	size_t i = 4;
	long long cpu = 0, lost = 0;
	const char *m;
	if (n < 4 || memcmp(s, "CPU:", 4) != 0)
		return 0;
	if (i >= n || !is_digit(s[i]))
		return 0;
	while (i < n && is_digit(s[i]) && cpu < 100000)
		cpu = cpu * 10 + (s[i++] - '0');
	m = " [LOST ";
	if (n - i < strlen(m) || memcmp(s + i, m, strlen(m)) != 0)
		return 0;
	i += strlen(m);
	if (i < n && is_digit(s[i])) {
		while (i < n && is_digit(s[i]) && lost < 1000000000000000LL)
			lost = lost * 10 + (s[i++] - '0');
	} else {
		lost = -1; /* some kernels print "[LOST EVENTS]" with no count */
	}
	out->kind = DP_LINE_LOST;
	out->cpu = (int)cpu;
	out->lost = lost;
	return 1;
}

/*
 * Find "-<pid> [(<tgid>)] [<cpu>] " and return the index of '-', with pid,
 * cpu and the index just past "] ".
 */
static int find_anchor(const char *s, size_t n, size_t *dash, long *pid, int *cpu,
		       size_t *after)
{
	for (size_t b = 0; b < n; b++) {
		size_t i, j, k;
		long long c = 0, p = 0;
		if (s[b] != '[')
			continue;
		/* [cpu] */
		i = b + 1;
		if (i >= n || !is_digit(s[i]))
			continue;
		while (i < n && is_digit(s[i]) && c < 1000000)
			c = c * 10 + (s[i++] - '0');
		if (i >= n || s[i] != ']')
			continue;
		k = i + 1;
		/* walk back over spaces and an optional "(tgid)" */
		j = b;
		while (j > 0 && is_space(s[j - 1]))
			j--;
		if (j > 0 && s[j - 1] == ')') {
			size_t q = j - 1;
			while (q > 0 && s[q - 1] != '(')
				q--;
			if (q == 0)
				continue;
			j = q - 1;
			while (j > 0 && is_space(s[j - 1]))
				j--;
		}
		/* digits of the pid, then '-' */
		{
			size_t e = j, d;
			long long mul = 1;
			while (j > 0 && is_digit(s[j - 1]) && e - j < 12)
				j--;
			if (j == e || j == 0 || s[j - 1] != '-')
				continue;
			for (d = e; d > j; d--) {
				p += (s[d - 1] - '0') * mul;
				mul *= 10;
			}
			*dash = j - 1;
		}
		*pid = (long)p;
		*cpu = (int)c;
		*after = k;
		return 1;
	}
	return 0;
}

/* "<secs>.<frac>:" -> ns; returns index past ':' or 0. */
static size_t parse_ts(const char *s, size_t n, size_t i, uint64_t *ns)
{
	uint64_t sec = 0, frac = 0;
	int fd = 0, sd = 0;
	while (i < n && is_digit(s[i]) && sd < 12) {
		sec = sec * 10 + (uint64_t)(s[i++] - '0');
		sd++;
	}
	if (!sd)
		return 0;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && is_digit(s[i]) && fd < 9) {
			frac = frac * 10 + (uint64_t)(s[i++] - '0');
			fd++;
		}
		while (i < n && is_digit(s[i]))
			i++; /* more than ns precision: ignored */
	}
	if (i >= n || s[i] != ':')
		return 0;
	for (; fd < 9; fd++)
		frac *= 10;
	*ns = sec * 1000000000ULL + frac;
	return i + 1;
}

static enum dp_line_kind parse_line(const char *s, size_t n, struct dp_line *out)
{
	size_t i, dash, after, c0;
	memset(out, 0, sizeof(*out));
	out->kind = DP_LINE_BAD;
	if (n && s[n - 1] == '\r')
		n--;
	i = 0;
	while (i < n && is_space(s[i]))
		i++;
	if (i == n)
		return out->kind = DP_LINE_EMPTY;
	if (s[i] == '#')
		return out->kind = DP_LINE_COMMENT;
	if (n - i >= 3 && s[i] == '=' && s[i + 1] == '>' && s[i + 2] == ' ') {
		size_t e = n;
		i += 3;
		while (i < e && is_space(s[i]))
			i++;
		while (e > i && is_space(s[e - 1]))
			e--;
		out->frame.p = s + i;
		out->frame.n = e - i;
		return out->kind = DP_LINE_FRAME;
	}
	if (parse_lost(s + i, n - i, out))
		return out->kind;
	if (!find_anchor(s, n, &dash, &out->pid, &out->cpu, &after))
		return out->kind;
	/* comm: from the first non-space to the dash (may be empty: "<...>") */
	c0 = 0;
	while (c0 < dash && is_space(s[c0]))
		c0++;
	out->comm.p = s + c0;
	out->comm.n = dash - c0;
	/* flags (optional: irq-info off removes them) */
	i = after;
	while (i < n && is_space(s[i]))
		i++;
	{
		size_t f = i;
		while (i < n && !is_space(s[i]))
			i++;
		/* a token ending in ':' whose head is digits is the timestamp */
		if (i > f && s[i - 1] == ':' && is_digit(s[f])) {
			i = f;
		} else {
			out->flags.p = s + f;
			out->flags.n = i - f;
			while (i < n && is_space(s[i]))
				i++;
		}
	}
	i = parse_ts(s, n, i, &out->ts_ns);
	if (!i)
		return out->kind = DP_LINE_BAD;
	while (i < n && is_space(s[i]))
		i++;
	/* name: up to ':' (event names have no spaces; "<stack trace>" does) */
	{
		size_t b = i;
		if (i < n && s[i] == '<') {
			while (i < n && s[i] != '>')
				i++;
			if (i >= n)
				return out->kind = DP_LINE_BAD;
			i++;
			out->name.p = s + b;
			out->name.n = i - b;
			if (out->name.n == 13 && memcmp(out->name.p, "<stack trace>", 13) == 0)
				out->kind = DP_LINE_STACK;
			else if (out->name.n == 18 &&
				 memcmp(out->name.p, "<user stack trace>", 18) == 0)
				out->kind = DP_LINE_USTACK;
			else
				out->kind = DP_LINE_EVENT;
			if (i < n && s[i] == ':')
				i++;
		} else {
			while (i < n && s[i] != ':' && !is_space(s[i]))
				i++;
			if (i > b && i < n && is_space(s[i])) {
				/* the function tracer: "__kfree_skb <-tcp_ack" */
				size_t e = i, p;
				while (i < n && is_space(s[i]))
					i++;
				if (n - i > 2 && s[i] == '<' && s[i + 1] == '-') {
					p = i + 2;
					i = p;
					while (i < n && !is_space(s[i]))
						i++;
					if (i == p)
						return out->kind = DP_LINE_BAD;
					out->fn_ip.p = s + b;
					out->fn_ip.n = e - b;
					out->fn_parent.p = s + p;
					out->fn_parent.n = i - p;
					out->name.p = "function";
					out->name.n = 8;
					out->payload.p = s + b;
					out->payload.n = n - b;
					return out->kind = DP_LINE_EVENT;
				}
				return out->kind = DP_LINE_BAD;
			}
			if (i == b || i >= n || s[i] != ':')
				return out->kind = DP_LINE_BAD;
			out->name.p = s + b;
			out->name.n = i - b;
			out->kind = DP_LINE_EVENT;
			i++;
		}
	}
	while (i < n && is_space(s[i]))
		i++;
	out->payload.p = s + i;
	out->payload.n = n - i;
	return out->kind;
}

int dp_payload_next(struct dp_span payload, size_t *pos, struct dp_span *key,
		    struct dp_span *val)
{
	const char *s = payload.p;
	size_t n = payload.n, i = *pos;
	while (i < n) {
		size_t b, e, eq = 0;
		while (i < n && is_space(s[i]))
			i++;
		b = i;
		while (i < n && !is_space(s[i])) {
			if (s[i] == '=' && !eq)
				eq = i;
			i++;
		}
		e = i;
		if (e == b)
			break;
		if (eq > b) {
			key->p = s + b;
			key->n = eq - b;
			val->p = s + eq + 1;
			val->n = e - eq - 1;
			if (val->n && val->p[val->n - 1] == ',')
				val->n--;
			*pos = i;
			return 1;
		}
		/* "key: value" where value is one token without '=' */
		if (e - b > 1 && s[e - 1] == ':') {
			size_t vb, ve, j = i;
			int has_eq = 0;
			while (j < n && is_space(s[j]))
				j++;
			vb = j;
			while (j < n && !is_space(s[j])) {
				if (s[j] == '=')
					has_eq = 1;
				j++;
			}
			ve = j;
			if (ve > vb && !has_eq) {
				key->p = s + b;
				key->n = e - 1 - b;
				val->p = s + vb;
				val->n = ve - vb;
				if (val->n && val->p[val->n - 1] == ',')
					val->n--;
				*pos = j;
				return 1;
			}
		}
	}
	*pos = n;
	return 0;
}

static const char *find_span(const char *p, size_t n, struct dp_span lit)
{
	const char *end = p + n, *q = p;
	if (lit.n == 0 || lit.n > n)
		return NULL;
	/* the literal's first byte by memchr, then the rest compared */
	while ((q = memchr(q, lit.p[0], (size_t)(end - q) - lit.n + 1))) {
		if (memcmp(q + 1, lit.p + 1, lit.n - 1) == 0)
			return q;
		if ((size_t)(end - ++q) < lit.n)
			break;
	}
	return NULL;
}

int dp_template_match(struct dp_span payload, const struct dp_span *lits, int n,
		      struct dp_span tail, struct dp_span *vals)
{
	const char *s = payload.p, *end = payload.p + payload.n;
	if (n <= 0)
		return 0;
	/* the tail ends the payload */
	if (tail.n) {
		if (tail.n > payload.n || memcmp(end - tail.n, tail.p, tail.n) != 0)
			return 0;
		end -= tail.n;
	}
	for (int i = 0; i < n; i++) {
		const char *v;
		if (lits[i].n > (size_t)(end - s) || memcmp(s, lits[i].p, lits[i].n) != 0)
			return 0;
		s += lits[i].n;
		if (i + 1 == n) {
			v = end;
		} else {
			if (lits[i + 1].n == 0)
				return 0;
			v = find_span(s, (size_t)(end - s), lits[i + 1]);
			if (!v)
				return 0;
		}
		vals[i].p = s;
		vals[i].n = (size_t)(v - s);
		s = v;
	}
	return 1;
}

int dp_span_hex(struct dp_span s, unsigned long long *u)
{
	unsigned long long v = 0;
	size_t i = 0;
	if (s.n > 2 && s.p[0] == '0' && (s.p[1] == 'x' || s.p[1] == 'X'))
		i = 2;
	if (i == s.n || s.n - i > 16)
		return 0;
	for (; i < s.n; i++) {
		char c = s.p[i];
		int d = (c >= '0' && c <= '9')   ? c - '0'
			: (c >= 'a' && c <= 'f') ? c - 'a' + 10
			: (c >= 'A' && c <= 'F') ? c - 'A' + 10
						 : -1;
		if (d < 0)
			return 0;
		v = v << 4 | (unsigned)d;
	}
	*u = v;
	return 1;
}

enum dp_line_kind dp_parse_line(const char *s, size_t n, struct dp_line *out)
{
	enum dp_line_kind k = parse_line(s, n, out);
	if ((k == DP_LINE_EVENT || k == DP_LINE_STACK || k == DP_LINE_USTACK || k == DP_LINE_LOST) &&
	    out->cpu > DP_CPU_MAX)
		return out->kind = DP_LINE_BAD; /* no CPU has that number: a line of no trace */
	return k;
}
