/*
 * lines.c - trace text as it is read (see lines.h).
 */
#include "lines.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int dp_lines_init(struct dp_lines *b, size_t cap, size_t read_max)
{
	memset(b, 0, sizeof(*b));
	b->read_max = read_max;
	b->buf = malloc(cap);
	if (!b->buf)
		return -1;
	b->cap = cap;
	return 0;
}

void dp_lines_free(struct dp_lines *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

/* Where the next read goes: *n bytes (the free space, at most read_max). */
static char *space(struct dp_lines *b, size_t *n)
{
	*n = b->cap - b->len;
	if (b->read_max && *n > b->read_max)
		*n = b->read_max;
	return b->buf + b->len;
}

ssize_t dp_lines_read(struct dp_lines *b, int fd)
{
	size_t room;
	char *p = space(b, &room);
	ssize_t r;
	if (!room) { /* dp_lines_each always leaves room: a caller that did not */
		errno = ENOBUFS;
		return -1;
	}
	do
		r = read(fd, p, room);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		b->len += (size_t)r;
	return r;
}

void dp_lines_each(struct dp_lines *b, int final, dp_line_fn fn, void *ctx)
{
	size_t start;
	for (;;) {
		const char *nl = memchr(b->buf + b->done, '\n', b->len - b->done);
		size_t i;
		if (!nl)
			break;
		i = (size_t)(nl - b->buf);
		start = b->done;
		b->done = i + 1;
		fn(ctx, b->buf + start, i - start);
	}
	if (final && b->done < b->len) {
		start = b->done;
		b->done = b->len;
		fn(ctx, b->buf + start, b->len - start);
	}
	if (b->done) {
		memmove(b->buf, b->buf + b->done, b->len - b->done);
		b->len -= b->done;
		b->done = 0;
	}
	if (b->len == b->cap) { /* a line longer than the buffer is no trace line */
		b->overlong++;
		b->len = 0;
	}
}
