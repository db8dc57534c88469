/*
 * btf.c - what the kernel's own type information (/sys/kernel/btf/vmlinux)
 * says, read with libbpf's BTF API (no BPF program is loaded): the values
 * of an enum such as skb_drop_reason, so that names, not numbers, carry
 * across kernels.
 */

/***
 * @submodule dropprobe.core
 */
#include "util.h"

#include <errno.h>
#include <string.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#define DP_BTF_DIR "/sys/kernel/btf/"
#define DP_BTF_VMLINUX DP_BTF_DIR "vmlinux"

/* libbpf prints its warnings to stderr by default; the caller gets them as
 * return values instead */
static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

/* The kernel's own BTF is parsed once per process (megabytes, and slow
 * under emulation) and kept; another file's is parsed for the call and
 * freed with done(). NULL with an error message pushed as nil, message. */
static struct btf *vmlinux_btf;

static struct btf *open_btf(lua_State *L, const char *path)
{
	int own = strcmp(path, DP_BTF_VMLINUX) == 0;
	libbpf_print_fn_t old;
	struct btf *btf;
	int err;
	if (own && vmlinux_btf)
		return vmlinux_btf;
	if (!own && strncmp(path, DP_BTF_DIR, strlen(DP_BTF_DIR)) == 0) {
		/* a module's BTF is split: its types continue the kernel's */
		struct btf *base = open_btf(L, DP_BTF_VMLINUX);
		if (!base)
			return NULL;
		old = libbpf_set_print(quiet);
		btf = btf__parse_split(path, base);
	} else {
		old = libbpf_set_print(quiet);
		btf = btf__parse_raw(path);
	}
	err = errno;
	libbpf_set_print(old);
	if (!btf) {
		luaL_pushfail(L);
		lua_pushfstring(L, "cannot read BTF from %s: %s", path, strerror(err));
		return NULL;
	}
	if (own)
		vmlinux_btf = btf;
	return btf;
}

static void done(struct btf *btf)
{
	if (btf != vmlinux_btf)
		btf__free(btf);
}

/* An enum's members as { NAME = value } on top of the stack. */
static void push_enum(lua_State *L, const struct btf *btf, const struct btf_type *t)
{
	lua_createtable(L, 0, btf_vlen(t));
	if (btf_is_enum(t)) {
		const struct btf_enum *e = btf_enum(t);
		for (int i = 0; i < btf_vlen(t); i++) {
			lua_pushstring(L, btf__name_by_offset(btf, e[i].name_off));
			/* signed where the enum is (BTF_KIND_ENUM's kflag) */
			lua_pushinteger(L, btf_kflag(t) ? (lua_Integer)(__s32)e[i].val : (lua_Integer)e[i].val);
			lua_rawset(L, -3);
		}
	} else {
		const struct btf_enum64 *e = btf_enum64(t);
		for (int i = 0; i < btf_vlen(t); i++) {
			lua_pushstring(L, btf__name_by_offset(btf, e[i].name_off));
			lua_pushinteger(L, (lua_Integer)btf_enum64_value(e + i));
			lua_rawset(L, -3);
		}
	}
}

/***
 * The members of a kernel enum from its BTF (`btf.c`, libbpf's BTF API; no
 * BPF program is loaded): `core.btf_enum("skb_drop_reason").SKB_CONSUMED`.
 * @function btf_enum
 * @tparam string name the enum's name
 * @tparam[opt="/sys/kernel/btf/vmlinux"] string path a BTF file
 * @treturn table|nil `{ NAME = value, ... }`, or nil and a message
 */
static int btf_enum_values(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *path = luaL_optstring(L, 2, DP_BTF_VMLINUX);
	struct btf *btf = open_btf(L, path);
	__s32 id;
	if (!btf)
		return 2;
	id = btf__find_by_name_kind(btf, name, BTF_KIND_ENUM);
	if (id < 0)
		id = btf__find_by_name_kind(btf, name, BTF_KIND_ENUM64);
	if (id < 0) {
		done(btf);
		luaL_pushfail(L);
		lua_pushfstring(L, "the kernel's BTF has no enum %s", name);
		return 2;
	}
	push_enum(L, btf, btf__type_by_id(btf, (__u32)id));
	done(btf);
	return 1;
}

/***
 * Every enum of a BTF whose name ends with `suffix` (`btf.c`, libbpf):
 * `core.btf_enums("_drop_reason")` gives `{ qdisc_drop_reason = {
 * QDISC_DROP_GENERIC = 196609, ... }, ... }`. A module's BTF
 * (`/sys/kernel/btf/openvswitch`) is read on top of the kernel's, and only
 * its own types are listed.
 * @function btf_enums
 * @tparam string suffix the end of the enums' names ("" for all)
 * @tparam[opt="/sys/kernel/btf/vmlinux"] string path a BTF file
 * @treturn table|nil `{ enum_name = { NAME = value } }`, or nil and a message
 */
static int btf_enums_by_suffix(lua_State *L)
{
	size_t slen;
	const char *suffix = luaL_checklstring(L, 1, &slen);
	const char *path = luaL_optstring(L, 2, DP_BTF_VMLINUX);
	struct btf *btf = open_btf(L, path);
	const struct btf *base;
	__u32 first = 1, n;
	if (!btf)
		return 2;
	base = btf__base_btf(btf);
	if (base)
		first = btf__type_cnt(base);
	n = btf__type_cnt(btf);
	lua_newtable(L);
	for (__u32 id = first; id < n; id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const char *name;
		size_t len;
		if (!t || !(btf_is_enum(t) || btf_is_enum64(t)))
			continue;
		name = btf__name_by_offset(btf, t->name_off);
		len = name ? strlen(name) : 0;
		if (!len || len < slen || memcmp(name + len - slen, suffix, slen) != 0)
			continue;
		push_enum(L, btf, t);
		lua_setfield(L, -2, name);
	}
	done(btf);
	return 1;
}

/* Members of a struct or union into the table on top, by name, with their
 * byte offset from the outer struct (base bytes); anonymous struct and
 * union members are walked into, as C lets a program name their members. */
static void members(lua_State *L, const struct btf *btf, const struct btf_type *t, long base,
		    int depth)
{
	const struct btf_member *m = btf_members(t);
	for (int i = 0; i < btf_vlen(t); i++) {
		const char *name = btf__name_by_offset(btf, m[i].name_off);
		__u32 bits = btf_member_bit_offset(t, (__u32)i);
		const struct btf_type *mt = btf__type_by_id(btf, m[i].type);
		__s64 size;
		if (btf_member_bitfield_size(t, (__u32)i) || bits % 8)
			continue; /* a bitfield: no byte offset to fetch from */
		while (mt && (btf_is_mod(mt) || btf_is_typedef(mt)))
			mt = btf__type_by_id(btf, mt->type);
		if ((!name || !*name) && mt && (btf_is_struct(mt) || btf_is_union(mt))) {
			if (depth < 8)
				members(L, btf, mt, base + (long)(bits / 8), depth + 1);
			continue;
		}
		if (!name || !*name)
			continue;
		size = btf__resolve_size(btf, m[i].type);
		lua_createtable(L, 0, 3);
		lua_pushinteger(L, base + (long)(bits / 8));
		lua_setfield(L, -2, "offset");
		lua_pushinteger(L, size < 0 ? 0 : (lua_Integer)size);
		lua_setfield(L, -2, "size");
		lua_pushboolean(L, mt && btf_is_ptr(mt));
		lua_setfield(L, -2, "pointer");
		lua_setfield(L, -2, name);
	}
}

/***
 * Where the members of a kernel struct are, from its BTF (`btf.c`, libbpf):
 * `core.btf_struct("sk_buff").head.offset`; anonymous structs and unions are
 * walked into, bitfields left out.
 * @function btf_struct
 * @tparam string name the struct's name
 * @tparam[opt="/sys/kernel/btf/vmlinux"] string path a BTF file
 * @treturn table|nil `{ member = { offset =, size =, pointer = } }`, or nil
 *   and a message
 */
static int btf_struct_members(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *path = luaL_optstring(L, 2, DP_BTF_VMLINUX);
	struct btf *btf = open_btf(L, path);
	__s32 id;
	if (!btf)
		return 2;
	id = btf__find_by_name_kind(btf, name, BTF_KIND_STRUCT);
	if (id < 0) {
		done(btf);
		luaL_pushfail(L);
		lua_pushfstring(L, "the kernel's BTF has no struct %s", name);
		return 2;
	}
	lua_newtable(L);
	members(L, btf, btf__type_by_id(btf, (__u32)id), 0, 0);
	done(btf);
	return 1;
}

/***
 * A kernel function and its parameters from the BTF (`btf.c`, libbpf):
 * whether the kernel kept `name` as a function, and where a probe at its
 * entry finds each argument (`dp.drop_hook()` reads it: no table of
 * versions). The kernel's own BTF is parsed once per process and kept.
 * @function btf_func
 * @tparam string name
 * @tparam[opt="/sys/kernel/btf/vmlinux"] string path a BTF file
 * @treturn table|nil `{ "sk", "skb", "reason" }` in order, or nil and a
 *   message
 */
static int btf_func_params(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *path = luaL_optstring(L, 2, DP_BTF_VMLINUX);
	struct btf *btf = open_btf(L, path);
	const struct btf_type *t;
	const struct btf_param *p;
	__s32 id;
	if (!btf)
		return 2;
	id = btf__find_by_name_kind(btf, name, BTF_KIND_FUNC);
	t = id < 0 ? NULL : btf__type_by_id(btf, btf__type_by_id(btf, (__u32)id)->type);
	if (!t || !btf_is_func_proto(t)) {
		done(btf);
		luaL_pushfail(L);
		lua_pushfstring(L, "the kernel's BTF has no function %s", name);
		return 2;
	}
	p = btf_params(t);
	lua_createtable(L, btf_vlen(t), 0);
	for (int i = 0; i < btf_vlen(t); i++) {
		const char *pn = btf__name_by_offset(btf, p[i].name_off);
		lua_pushstring(L, pn ? pn : "");
		lua_rawseti(L, -2, i + 1);
	}
	done(btf);
	return 1;
}

/* The cached BTF goes with the Lua state (lua_close unloads this module:
 * a static pointer alone would leave it lost) */
static int btf_release(lua_State *L)
{
	(void)L;
	if (vmlinux_btf)
		btf__free(vmlinux_btf);
	vmlinux_btf = NULL;
	return 0;
}

void dp_btf_open(lua_State *L)
{
	dp_on_close(L, "dropprobe.btf", btf_release);
	lua_pushcfunction(L, btf_struct_members);
	lua_setfield(L, -2, "btf_struct");
	lua_pushcfunction(L, btf_enum_values);
	lua_setfield(L, -2, "btf_enum");
	lua_pushcfunction(L, btf_enums_by_suffix);
	lua_setfield(L, -2, "btf_enums");
	lua_pushcfunction(L, btf_func_params);
	lua_setfield(L, -2, "btf_func");
}
