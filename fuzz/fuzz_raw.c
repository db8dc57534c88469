/*
 * fuzz_raw.c - libFuzzer over the binary decoder: arbitrary sub-buffer
 * pages, read with the formats of spec/fixtures/raw (header_page,
 * skb:kfree_skb, ftrace:kernel_stack, icmp:icmp_send, tcp:tcp_send_reset),
 * split into events by kbuffer and decoded by decode.c into records that
 * the joiner queues and hands out, stacks joined, as live raw mode does.
 *
 *   make fuzz    (runs both targets; a crash leaves build/fuzz-raw-crash-*)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <event-parse.h>
#include <kbuffer.h>

#include "../lua-dropprobe/decode.h"
#include "../lua-dropprobe/join.h"
#include "../lua-dropprobe/ksym.h"
#include "../lua-dropprobe/record.h"

#define PAGE 4096

static lua_State *L;
static struct tep_handle *tep;
static struct dp_ksyms syms; /* none: addresses stay hex, as a tep without kallsyms gives them */
static struct dp_decoder dec;

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	if (!f) {
		fprintf(stderr, "fuzz_raw: cannot read %s (run from the project root)\n", path);
		exit(1);
	}
	buf = malloc(1 << 20);
	*n = fread(buf, 1, (1 << 20) - 1, f);
	buf[*n] = 0;
	fclose(f);
	return buf;
}

static void load(const char *file, const char *sys)
{
	char path[256];
	size_t n;
	char *buf;
	snprintf(path, sizeof(path), "spec/fixtures/raw/%s", file);
	buf = slurp(path, &n);
	if (tep_parse_event(tep, buf, n, sys) != 0) {
		fprintf(stderr, "fuzz_raw: cannot parse %s\n", path);
		exit(1);
	}
	free(buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t n;
	char *hp;
	(void)argc;
	(void)argv;
	tep = tep_alloc();
	hp = slurp("spec/fixtures/raw/header_page", &n);
	tep_parse_header_page(tep, hp, (unsigned long)n, 8);
	free(hp);
	load("kfree_skb.format", "skb");
	load("kernel_stack.format", "ftrace");
	load("icmp_send.format", "icmp");
	load("tcp_send_reset.format", "tcp");
	L = luaL_newstate();
	luaL_openlibs(L);
	lua_newtable(L);
	dp_record_open(L);
	lua_pop(L, 1);
	dp_ksyms_init(&syms, tep, 0);
	if (dp_decoder_init(L, &dec, &syms, 0, 0)) {
		fprintf(stderr, "fuzz_raw: decoder refused the fixture formats\n");
		exit(1);
	}
	return 0;
}

/*
 * libtraceevent's kbuffer trusts the kernel: an event whose length field
 * points backwards (type_len 0 with a length under 4, a padding length
 * beyond the page) makes kbuffer_next_event loop for ever. The kernel never
 * writes such a page, so the harness keeps to pages whose every length
 * moves forward (walking the event headers of header_event: type_len:5,
 * time_delta:27, array[]) and fuzzes what dropprobe does with the rest.
 */
static int lengths_forward(const unsigned char *page, unsigned long long commit)
{
	size_t off = 16, end = 16 + (size_t)commit;
	while (off + 4 <= end) {
		uint32_t w, len;
		memcpy(&w, page + off, 4);
		switch (w & 31) {
		case 0:
		case 29: /* data with its length in array[0]; padding */
			if (off + 8 > end)
				return 1;
			memcpy(&len, page + off + 4, 4);
			if ((w & 31) == 0 && len < 4)
				return 0;
			if (len > PAGE)
				return 0;
			off += 8 + ((w & 31) == 0 ? len - 4 : len);
			break;
		case 30:
		case 31: /* time extend, time stamp */
			off += 8;
			break;
		default:
			off += 4 + (size_t)(w & 31) * 4;
		}
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char page[PAGE];
	struct kbuffer *kb;
	struct dp_join j;
	unsigned long long ts, commit;
	void *ev;
	int base, keys, refs, cpu = 0, n = 0;
	static unsigned long runs;
	if (size < 16)
		return 0;
	if (++runs % 20000 == 0) { /* the caches grow with random pids and addresses */
		dp_decoder_free(L, &dec);
		lua_gc(L, LUA_GCCOLLECT);
		if (dp_decoder_init(L, &dec, &syms, 0, 0))
			abort();
	}
	memset(page, 0, sizeof(page));
	memcpy(page, data, size < PAGE ? size : PAGE);
	/* the kernel never hands out a page whose commit exceeds it: kbuffer
	 * trusts that, so the fuzzer keeps to it */
	memcpy(&commit, page + 8, 8);
	commit &= ((1ULL << 27) - 1);
	if (commit > PAGE - 16)
		commit = PAGE - 16;
	memcpy(page + 8, &commit, 8);
	if (!lengths_forward(page, commit))
		return 0;
	kb = kbuffer_alloc(KBUFFER_LSIZE_8, KBUFFER_ENDIAN_LITTLE);
	if (!kb || kbuffer_load_subbuffer(kb, page) < 0) {
		kbuffer_free(kb);
		return 0;
	}
	dp_join_init(&j);
	lua_settop(L, 0);
	lua_newtable(L);
	refs = lua_gettop(L);
	dp_push_keys(L);
	keys = lua_gettop(L);
	base = dp_decode_begin(L, &dec);
	for (ev = kbuffer_read_event(kb, &ts); ev && n < 4096; ev = kbuffer_next_event(kb, &ts), n++) {
		int size_ev = kbuffer_event_size(kb);
		char *end = (char *)page + PAGE;
		if (size_ev < 0 || (char *)ev < (char *)page || (char *)ev + size_ev > end)
			break;
		switch (dp_decode(L, &dec, base, keys, cpu, ev, size_ev, ts, 1)) {
		case DP_DEC_RECORD:
			dp_join_record(L, &j, refs, keys, cpu, 1);
			break;
		case DP_DEC_STACK:
			dp_join_stack(L, &j, refs, keys, cpu);
			break;
		default:
			break;
		}
		cpu = (cpu + 1) % 3;
	}
	dp_decode_end(L);
	dp_join_release(&j);
	while (dp_join_pop(L, &j, refs))
		lua_pop(L, 1);
	dp_join_free(&j);
	kbuffer_free(kb);
	lua_settop(L, 0);
	return 0;
}
