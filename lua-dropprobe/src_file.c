/*
 * src_file.c - records from a saved trace text (the `trace` file, or what
 * trace_pipe gave), through the text decoder. Every record may get a stack
 * from the lines after it.
 */

/***
 * @submodule dropprobe.core
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "util.h"
#include "source.h"
#include "textdec.h"

struct src_file {
	int fd;
	char *path; /* for a read error's message */
	struct dp_textdec td;
};

static int file_fill(lua_State *L, void *src, struct dp_fill *f, int ms)
{
	struct src_file *s = src;
	ssize_t r;
	(void)ms;
	/* each read is handed out whole: there is room for the next */
	if ((r = dp_textdec_read(&s->td, s->fd)) > 0) {
		dp_textdec_feed(L, &s->td, f, 1, 0);
		return DP_FILL_DATA;
	}
	if (r < 0) /* not the end: said, not taken for one */
		return luaL_error(L, "cannot read trace file '%s': %s", s->path ? s->path : "?", strerror(errno));
	dp_textdec_feed(L, &s->td, f, 1, DP_TEXT_FINAL);
	return DP_FILL_EOF;
}

static void file_stats(lua_State *L, void *src)
{
	dp_textdec_stats(L, &((struct src_file *)src)->td);
}

static void file_close(lua_State *L, void *src)
{
	struct src_file *s = src;
	(void)L;
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	dp_textdec_free(&s->td);
	free(s);
}

static const struct dp_source_ops file_ops = {
	.mode = "file",
	.fill = file_fill,
	.fd = NULL,
	.stats = file_stats,
	.close = file_close,
	.max_wait_ms = 0,
};

/***
 * A Pipe over a saved trace text (a copy of trace or trace_pipe).
 * @function open_text
 * @tparam string path
 * @tparam[opt] table opts `names` (event -> system), `formats_dir`
 * @return a Pipe
 */
static int open_text(lua_State *L)
{
	static const char *const opts[] = {"names", "formats_dir", NULL};
	const char *path = luaL_checkstring(L, 1);
	const char *dir;
	struct src_file *s;
	char msg[4200];
	dp_check_fields(L, 2, opts);
	dir = dp_opt_string(L, 2, "formats_dir", NULL);
	lua_createtable(L, 0, 2);
	if (lua_istable(L, 2)) {
		lua_getfield(L, 2, "names");
		lua_setfield(L, -2, "names");
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return luaL_error(L, "out of memory");
	s->fd = -1;
	dp_pipe_new(L, &file_ops, s, -1, 0);
	if (dp_textdec_init(&s->td, dir, 0) < 0)
		return dp_pipe_fail(L, -1, "out of memory");
	s->path = strdup(path);
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		snprintf(msg, sizeof(msg), "cannot open trace file '%s': %s", path, strerror(errno));
		return dp_pipe_fail(L, -1, msg);
	}
	return 1;
}

void dp_src_file_open(lua_State *L)
{
	lua_pushcfunction(L, open_text);
	lua_setfield(L, -2, "open_text");
}
