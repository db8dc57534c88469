/*
 * src_text.c - records from an instance's trace_pipe, the kernel's text
 * (non-blocking fd and poll), through the text decoder.
 */

/***
 * @submodule dropprobe.core
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tracefs.h>

#include "core.h"
#include "util.h"
#include "instance.h"
#include "source.h"
#include "textdec.h"

struct src_text {
	int fd;
	struct dp_instance *inst; /* alive while own.instance holds it */
	struct dp_textdec td;
};

/* Records wait for a stack only where a stacktrace trigger may send one. */
static int holding(struct src_text *s)
{
	return dp_instance_stacked(s->inst);
}

/* 1: read something, 0: nothing there, -1: error. Each read is handed
 * out whole: there is room for the next. */
static int read_some(lua_State *L, struct src_text *s, struct dp_fill *f)
{
	ssize_t r = dp_textdec_read(&s->td, s->fd);
	if (r > 0) {
		dp_textdec_feed(L, &s->td, f, holding(s), DP_TEXT_ENTRIES);
		return 1;
	}
	if (r < 0 && errno != EAGAIN)
		return -1;
	return 0;
}

/* How long a reader that has caught up lets the events that woke it
 * gather before it reads them (ms). trace_pipe's poll wakes at the first
 * new event: read at once, a reader faster than the events pays a wakeup,
 * a poll and two reads for every few of them; after the nap it takes a
 * page at a time, as trace-cmd does with its sleep between reads. */
#define NAP_MS 1

static int text_fill(lua_State *L, void *src, struct dp_fill *f, int ms)
{
	struct src_text *s = src;
	struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
	double t0;
	int r = read_some(L, s, f);
	if (r)
		return r > 0 ? DP_FILL_DATA : DP_FILL_EOF;
	t0 = dp_mono();
	if (poll(&pfd, 1, ms) < 0)
		return errno == EINTR ? DP_FILL_INTR : DP_FILL_NONE;
	if (pfd.revents & POLLIN) {
		/* within the wait, which is the whole ms left plus one
		 * (source.h): a wait of 1 ms or less (a read that must not
		 * block, a drain) gets none */
		double left = (ms - 1) / 1e3 - (dp_mono() - t0);
		if (left > NAP_MS / 1e3)
			left = NAP_MS / 1e3;
		if (left > 0) { /* a signal cuts it short: what woke us is read */
			struct timespec ts = {0, (long)(left * 1e9)};
			nanosleep(&ts, NULL);
		}
	}
	r = read_some(L, s, f);
	return r > 0 ? DP_FILL_DATA : r < 0 ? DP_FILL_EOF : DP_FILL_NONE;
}

static int text_fd(void *src)
{
	return ((struct src_text *)src)->fd;
}

static void text_stats(lua_State *L, void *src)
{
	dp_textdec_stats(L, &((struct src_text *)src)->td);
}

static void text_close(lua_State *L, void *src)
{
	struct src_text *s = src;
	(void)L;
	if (s->fd >= 0)
		close(s->fd);
	dp_textdec_free(&s->td);
	free(s);
}

static const struct dp_source_ops text_ops = {
	.mode = "text",
	.fill = text_fill,
	.fd = text_fd,
	.stats = text_stats,
	.close = text_close,
	.max_wait_ms = 1000,
};

/***
 * A Pipe over an instance's trace_pipe, parsed in C.
 * @function text_pipe
 * @param inst an Instance
 * @tparam table opts `names` (event -> system), `symbols` (event -> field ->
 *   names), `formats_dir`, `grace`
 * @return a Pipe
 */
static int text_pipe(lua_State *L)
{
	struct dp_instance *in = dp_check_instance(L, 1);
	static const char *const opts[] = {"names", "symbols", "formats_dir", "grace", NULL};
	const char *dir;
	double grace;
	struct src_text *s;
	char msg[256];
	luaL_checktype(L, 2, LUA_TTABLE);
	dp_check_fields(L, 2, opts);
	dir = dp_opt_string(L, 2, "formats_dir", NULL);
	grace = dp_opt_number(L, 2, "grace", 0.1);
	lua_createtable(L, 0, 4);
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, "instance");
	lua_getfield(L, 2, "names");
	lua_setfield(L, -2, "names");
	lua_getfield(L, 2, "symbols");
	lua_setfield(L, -2, "syms");
	s = calloc(1, sizeof(*s));
	if (!s)
		return luaL_error(L, "out of memory");
	s->fd = -1;
	s->inst = in;
	dp_pipe_new(L, &text_ops, s, -1, grace);
	if (dp_textdec_init(&s->td, dir, 1) < 0)
		return dp_pipe_fail(L, -1, "out of memory");
	s->fd = tracefs_instance_file_open(in->ti, "trace_pipe", O_RDONLY | O_NONBLOCK);
	if (s->fd < 0) {
		snprintf(msg, sizeof(msg), "cannot open the instance's trace_pipe: %s",
			 strerror(errno));
		return dp_pipe_fail(L, -1, msg);
	}
	dp_instance_adopt(L, 1, -1, DP_CHILD_READER, NULL);
	return 1;
}

void dp_src_text_open(lua_State *L)
{
	lua_pushcfunction(L, text_pipe);
	lua_setfield(L, -2, "text_pipe");
}
