/*
 * pcapfile.c - dropprobe.PcapWriter: a pcapng file written as packets
 * come (pcapng.c builds the blocks). Each block goes out in one write(2)
 * of the whole block, so a reader (or a file cut short by kill -9) sees
 * whole blocks up to the last one written; there is no user-space buffer
 * to flush.
 */

/***
 * @submodule dropprobe.core
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "pcapng.h"
#include "util.h"

#define DP_PCAPWRITER_MT "dropprobe.PcapWriter"
#define MAXIF 256

struct pcapw {
	int fd;
	uint32_t snaplen;
	int nif;
	char *ifname[MAXIF];
	long long packets, bytes;
	char path[256];
	char app[128];
	int begun;
	unsigned char *buf;
	size_t cap;
};

static struct pcapw *check_writer(lua_State *L, int idx)
{
	struct pcapw *w = luaL_checkudata(L, idx, DP_PCAPWRITER_MT);
	if (w->fd < 0)
		luaL_error(L, "attempt to use a closed pcap writer");
	return w;
}

static int room(struct pcapw *w, size_t n)
{
	unsigned char *b;
	if (n <= w->cap)
		return 1;
	b = realloc(w->buf, n);
	if (!b)
		return 0;
	w->buf = b;
	w->cap = n;
	return 1;
}

/* The whole block out, or -1 with errno (a short write is retried). */
static int put(struct pcapw *w, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = write(w->fd, w->buf + done, len - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		done += (size_t)r;
	}
	w->bytes += (long long)len;
	return 0;
}

static int write_error(lua_State *L, struct pcapw *w, const char *what)
{
	return luaL_error(L, "pcap %s: %s: %s (%I packets, %I bytes written before)", w->path, what,
			  strerror(errno), (lua_Integer)w->packets, (lua_Integer)w->bytes);
}

static void release(struct pcapw *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	for (int i = 0; i < w->nif; i++)
		free(w->ifname[i]);
	w->nif = 0;
	free(w->buf);
	w->buf = NULL;
	w->cap = 0;
}

/***
 * A pcapng file for packets as they come. The file is made (mode 0600:
 * dropped packets may hold what others should not read; never through a
 * symlink) but emptied only by `begin` or the first packet, so a run that
 * fails before leaves an existing file as it was.
 * @function pcapng_open
 * @tparam string path
 * @tparam[opt] table opts `snaplen` (the most bytes a packet has, default
 * 65535), `app` (shb_userappl, default "dropprobe")
 * @return a PcapWriter
 * @raise a path that cannot be written, naming it
 */
static int pcapng_open(lua_State *L)
{
	static const char *const opts[] = {"snaplen", "app", NULL};
	size_t plen;
	const char *path = luaL_checklstring(L, 1, &plen);
	const char *app;
	lua_Integer snaplen;
	struct pcapw *w;
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		dp_check_fields(L, 2, opts);
	}
	snaplen = dp_opt_integer(L, 2, "snaplen", 65535);
	app = dp_opt_string(L, 2, "app", "dropprobe");
	luaL_argcheck(L, snaplen > 0 && snaplen <= 262144, 2, "snaplen: 1 to 262144 bytes");
	luaL_argcheck(L, strlen(app) < 128, 2, "app: at most 127 bytes");
	luaL_argcheck(L, plen > 0 && plen < sizeof(w->path) && strlen(path) == plen, 1,
		      "a file name, shorter than 256 bytes, without NUL");
	w = lua_newuserdatauv(L, sizeof(*w), 0);
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	luaL_setmetatable(L, DP_PCAPWRITER_MT);
	memcpy(w->path, path, plen + 1);
	w->snaplen = (uint32_t)snaplen;
	/* never through a symlink someone planted; not emptied yet: a run that
	 * fails before its first packet leaves an existing file as it was */
	w->fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (w->fd < 0)
		return luaL_error(L, "pcap %s: cannot create: %s", path, strerror(errno));
	if (fchmod(w->fd, 0600) < 0) {
		int e = errno;
		release(w);
		return luaL_error(L, "pcap %s: cannot make it private: %s", path, strerror(e));
	}
	snprintf(w->app, sizeof(w->app), "%s", app);
	return 1;
}

/* The file emptied and its section header written, once. */
static void begin(lua_State *L, struct pcapw *w)
{
	size_t n;
	struct stat st;
	if (w->begun)
		return;
	/* a regular file is emptied; a pipe or a device is written as it is */
	if (fstat(w->fd, &st) == 0 && S_ISREG(st.st_mode) && (ftruncate(w->fd, 0) < 0 ||
							       lseek(w->fd, 0, SEEK_SET) < 0))
		write_error(L, w, "cannot empty it");
	if (!room(w, dp_pcapng_shb_size(strlen(w->app))))
		luaL_error(L, "pcap: out of memory");
	n = dp_pcapng_shb(w->buf, w->cap, w->app, strlen(w->app));
	if (!n || put(w, n) < 0)
		write_error(L, w, "cannot write");
	w->begun = 1;
}

/***
 * Empty the file and write its section header, once: `packet` does it
 * before the first packet; a caller that wants the file made now (a run
 * that may see no drop) calls it when everything else is ready.
 * @function PcapWriter:begin
 * @raise a write that fails
 */
static int writer_begin(lua_State *L)
{
	begin(L, check_writer(L, 1));
	return 0;
}

/* The interface id of a name, its description block written the first time. */
static long interface_id(lua_State *L, struct pcapw *w, const char *name, size_t len)
{
	size_t n;
	for (int i = 0; i < w->nif; i++)
		if (strlen(w->ifname[i]) == len && memcmp(w->ifname[i], name, len) == 0)
			return i;
	if (w->nif == MAXIF)
		luaL_error(L, "pcap %s: at most %d interfaces", w->path, MAXIF);
	if (memchr(name, 0, len))
		luaL_error(L, "pcap: an interface name without NUL");
	if (!room(w, dp_pcapng_idb_size(len)))
		luaL_error(L, "pcap: out of memory");
	n = dp_pcapng_idb(w->buf, w->cap, DP_PCAPNG_LINKTYPE_RAW, w->snaplen, name, len);
	if (!n)
		luaL_error(L, "pcap: an interface name of at most %d bytes", DP_PCAPNG_OPT_MAX);
	/* known before it is written: ids never drift */
	w->ifname[w->nif] = strndup(name, len);
	if (!w->ifname[w->nif])
		luaL_error(L, "pcap: out of memory");
	w->nif++;
	if (put(w, n) < 0)
		write_error(L, w, "cannot write an interface");
	return w->nif - 1;
}

/***
 * Write one packet (raw IP: its first byte is the IPv4 or IPv6 header) as
 * an enhanced packet block, at most `snaplen` bytes of it.
 * @function PcapWriter:packet
 * @tparam string ifname the interface it belongs to (one description block
 * per name, written before its first packet)
 * @tparam integer ts_ns the time, in nanoseconds since the epoch
 * @tparam string data the packet's bytes
 * @tparam[opt] integer origlen its length on the wire (default: #data)
 * @tparam[opt] string comment opt_comment (the drop's reason and location)
 * @treturn integer the block's length
 * @raise a write that fails (a full disk), with what was written before
 */
static int writer_packet(lua_State *L)
{
	struct pcapw *w = check_writer(L, 1);
	size_t nlen, dlen, clen = 0, n;
	const char *name = luaL_checklstring(L, 2, &nlen);
	lua_Integer ts = luaL_checkinteger(L, 3);
	const char *data = luaL_checklstring(L, 4, &dlen);
	lua_Integer orig = luaL_optinteger(L, 5, (lua_Integer)dlen);
	const char *comment = luaL_optlstring(L, 6, NULL, &clen);
	long ifid;
	luaL_argcheck(L, ts >= 0, 3, "a time in ns since the epoch");
	luaL_argcheck(L, orig >= 0 && orig <= UINT32_MAX, 5, "a length of 0 to 2^32-1 bytes");
	luaL_argcheck(L, clen <= DP_PCAPNG_OPT_MAX, 6, "a comment of at most 65535 bytes");
	begin(L, w);
	ifid = interface_id(L, w, name, nlen);
	if (dlen > w->snaplen)
		dlen = w->snaplen;
	if (!room(w, dp_pcapng_epb_size(dlen, clen)))
		return luaL_error(L, "pcap: out of memory");
	n = dp_pcapng_epb(w->buf, w->cap, (uint32_t)ifid, (uint64_t)ts, (const unsigned char *)data, dlen,
			  (uint32_t)orig, comment, clen);
	if (!n)
		return luaL_error(L, "pcap: a packet block that does not fit");
	if (put(w, n) < 0)
		return write_error(L, w, "cannot write a packet");
	w->packets++;
	lua_pushinteger(L, (lua_Integer)n);
	return 1;
}

/***
 * What was written: `packets`, `bytes` (the file's length), `interfaces`.
 * @function PcapWriter:stats
 * @treturn table
 */
static int writer_stats(lua_State *L)
{
	struct pcapw *w = luaL_checkudata(L, 1, DP_PCAPWRITER_MT);
	lua_createtable(L, 0, 3);
	lua_pushinteger(L, w->packets);
	lua_setfield(L, -2, "packets");
	lua_pushinteger(L, w->bytes);
	lua_setfield(L, -2, "bytes");
	lua_pushinteger(L, w->nif);
	lua_setfield(L, -2, "interfaces");
	return 1;
}

/***
 * Close the file; idempotent; also `__close` and `__gc`. What was written
 * is already in the file: closing adds nothing.
 * @function PcapWriter:close
 * @treturn boolean true, or nil and why the close failed
 */
static int writer_close(lua_State *L)
{
	struct pcapw *w = luaL_checkudata(L, 1, DP_PCAPWRITER_MT);
	int fd = w->fd;
	w->fd = -1;
	release(w);
	if (fd >= 0 && close(fd) < 0) {
		luaL_pushfail(L);
		lua_pushfstring(L, "pcap %s: %s", w->path, strerror(errno));
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int writer_tostring(lua_State *L)
{
	struct pcapw *w = luaL_checkudata(L, 1, DP_PCAPWRITER_MT);
	lua_pushfstring(L, "dropprobe.PcapWriter %s [%s, %d packets]", w->path, w->fd >= 0 ? "open" : "closed",
			(int)w->packets);
	return 1;
}

static const luaL_Reg writer_methods[] = {
	{"begin", writer_begin},
	{"packet", writer_packet},
	{"stats", writer_stats},
	{"close", writer_close},
	{NULL, NULL},
};

static const luaL_Reg writer_meta[] = {
	{"__gc", writer_close},
	{"__close", writer_close},
	{"__tostring", writer_tostring},
	{NULL, NULL},
};

void dp_pcapfile_open(lua_State *L)
{
	luaL_newmetatable(L, DP_PCAPWRITER_MT);
	luaL_setfuncs(L, writer_meta, 0);
	luaL_newlib(L, writer_methods);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, -3, "PcapWriter");
	lua_pop(L, 1);
	lua_pushcfunction(L, pcapng_open);
	lua_setfield(L, -2, "pcapng_open");
}
