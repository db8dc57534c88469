/*
 * btf_funcs.c - the kernel functions a packet passes through, from the
 * kernel's BTF (libbpf's BTF API; no BPF program is loaded): every
 * function whose prototype has a `struct sk_buff *` among its first five
 * parameters, and where (as pwru finds them). `dp.path` keeps those that
 * available_filter_functions has, and puts a probe on each that fetches
 * the skb from that argument.
 */

/***
 * @submodule dropprobe.core
 */
#include "util.h"

#include <errno.h>
#include <regex.h>
#include <string.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#define DP_BTF_VMLINUX "/sys/kernel/btf/vmlinux"
#define SKB_ARGS_MAX 5 /* pwru's bound: the arguments passed in registers everywhere */

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

/* Whether type id is `struct sk_buff *` (const and typedefs allowed). */
static int is_skb_ptr(const struct btf *btf, __u32 id)
{
	const struct btf_type *t = btf__type_by_id(btf, id);
	const char *name;
	int depth = 0;
	while (t && (btf_is_mod(t) || btf_is_typedef(t)) && depth++ < 8)
		t = btf__type_by_id(btf, t->type);
	if (!t || !btf_is_ptr(t))
		return 0;
	t = btf__type_by_id(btf, t->type);
	depth = 0;
	while (t && (btf_is_mod(t) || btf_is_typedef(t)) && depth++ < 8)
		t = btf__type_by_id(btf, t->type);
	if (!t || !btf_is_struct(t))
		return 0;
	name = btf__name_by_offset(btf, t->name_off);
	return name && strcmp(name, "sk_buff") == 0;
}

/***
 * The kernel functions that take a `struct sk_buff *` among their first
 * five parameters, from its BTF (`btf_funcs.c`, libbpf): the name of each
 * and the position of its (first) skb parameter. The BTF is parsed for the
 * call and freed: this runs once per path hunt.
 * @function btf_skb_funcs
 * @tparam[opt="/sys/kernel/btf/vmlinux"] string path a BTF file
 * @tparam[opt] string regex only the names that match this POSIX extended
 *   regular expression (regcomp(3))
 * @treturn table|nil `{ ip_rcv = 1, __dev_queue_xmit = 1, sk_skb_reason_drop = 2, ... }`,
 *   or nil and a message
 */
static int btf_skb_funcs(lua_State *L)
{
	const char *path = luaL_optstring(L, 1, DP_BTF_VMLINUX);
	const char *re = luaL_optstring(L, 2, NULL);
	libbpf_print_fn_t old;
	struct btf *btf;
	regex_t rx;
	int err;
	__u32 n;
	if (re) {
		int rc = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
		if (rc) {
			char why[256];
			regerror(rc, &rx, why, sizeof(why));
			luaL_pushfail(L);
			lua_pushfstring(L, "'%s' is no regular expression: %s", re, why);
			return 2;
		}
	}
	old = libbpf_set_print(quiet);
	btf = btf__parse_raw(path);
	err = errno;
	libbpf_set_print(old);
	if (!btf) {
		if (re)
			regfree(&rx);
		luaL_pushfail(L);
		lua_pushfstring(L, "cannot read BTF from %s: %s", path, strerror(err));
		return 2;
	}
	n = btf__type_cnt(btf);
	lua_createtable(L, 0, 2048);
	for (__u32 id = 1; id < n; id++) {
		const struct btf_type *t = btf__type_by_id(btf, id), *proto;
		const struct btf_param *p;
		const char *name;
		int vlen;
		if (!t || !btf_is_func(t))
			continue;
		proto = btf__type_by_id(btf, t->type);
		if (!proto || !btf_is_func_proto(proto))
			continue;
		name = btf__name_by_offset(btf, t->name_off);
		if (!name || !*name || (re && regexec(&rx, name, 0, NULL, 0) != 0))
			continue;
		p = btf_params(proto);
		vlen = btf_vlen(proto);
		for (int i = 0; i < vlen && i < SKB_ARGS_MAX; i++) {
			if (is_skb_ptr(btf, p[i].type)) {
				lua_pushinteger(L, i + 1);
				lua_setfield(L, -2, name);
				break;
			}
		}
	}
	btf__free(btf);
	if (re)
		regfree(&rx);
	return 1;
}

void dp_btf_funcs_open(lua_State *L)
{
	lua_pushcfunction(L, btf_skb_funcs);
	lua_setfield(L, -2, "btf_skb_funcs");
}
