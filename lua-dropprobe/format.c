/*
 * format.c - event formats through libtraceevent: fields with type, offset,
 * size and signedness, and the symbol tables of __print_symbolic (the drop
 * reasons of skb:kfree_skb come from there; nothing is hard-coded).
 */

/***
 * @submodule dropprobe.core
 */
#include "format.h"

#include <stdlib.h>
#include <string.h>

#include <event-parse.h>

static void push_symbols(lua_State *L, struct tep_print_arg *arg, int symtab)
{
	for (; arg; arg = arg->next) {
		switch (arg->type) {
		case TEP_PRINT_SYMBOL: {
			struct tep_print_arg *f = arg->symbol.field;
			struct tep_print_flag_sym *sym;
			if (!f || f->type != TEP_PRINT_FIELD || !f->field.name)
				break;
			if (lua_getfield(L, symtab, f->field.name) != LUA_TTABLE) {
				lua_pop(L, 1);
				lua_newtable(L);
				lua_pushvalue(L, -1);
				lua_setfield(L, symtab, f->field.name);
			}
			for (sym = arg->symbol.symbols; sym; sym = sym->next) {
				char *end;
				long long v = strtoll(sym->value, &end, 0);
				if (end == sym->value || *end)
					continue;
				lua_pushstring(L, sym->str);
				lua_rawseti(L, -2, v);
			}
			lua_pop(L, 1);
			break;
		}
		case TEP_PRINT_OP:
			push_symbols(L, arg->op.left, symtab);
			push_symbols(L, arg->op.right, symtab);
			break;
		case TEP_PRINT_TYPE:
			push_symbols(L, arg->typecast.item, symtab);
			break;
		default:
			break;
		}
	}
}

static void push_fields(lua_State *L, struct tep_format_field *f, int *n, int common)
{
	for (; f; f = f->next) {
		lua_createtable(L, 0, 7);
		lua_pushstring(L, f->name);
		lua_setfield(L, -2, "name");
		lua_pushstring(L, f->type);
		lua_setfield(L, -2, "type");
		lua_pushinteger(L, f->offset);
		lua_setfield(L, -2, "offset");
		lua_pushinteger(L, f->size);
		lua_setfield(L, -2, "size");
		lua_pushboolean(L, (f->flags & TEP_FIELD_IS_SIGNED) != 0);
		lua_setfield(L, -2, "signed");
		lua_pushboolean(L, common);
		lua_setfield(L, -2, "common");
		if (f->flags & TEP_FIELD_IS_ARRAY) {
			lua_pushinteger(L, f->arraylen);
			lua_setfield(L, -2, "arraylen");
		}
		lua_rawseti(L, -2, ++*n);
	}
}

/* The first event field an argument prints. */
static const char *arg_field(struct tep_print_arg *a)
{
	const char *f;
	if (!a)
		return NULL;
	switch (a->type) {
	case TEP_PRINT_FIELD:
		return a->field.name;
	case TEP_PRINT_SYMBOL:
		return arg_field(a->symbol.field);
	case TEP_PRINT_FLAGS:
		return arg_field(a->flags.field);
	case TEP_PRINT_TYPE:
		return arg_field(a->typecast.item);
	case TEP_PRINT_HEX:
	case TEP_PRINT_HEX_STR:
		return arg_field(a->hex.field);
	case TEP_PRINT_STRING:
		return a->string.field ? a->string.field->name : a->string.string;
	case TEP_PRINT_DYNAMIC_ARRAY:
	case TEP_PRINT_DYNAMIC_ARRAY_LEN:
		return a->dynarray.field ? a->dynarray.field->name : NULL;
	case TEP_PRINT_OP:
		f = arg_field(a->op.left);
		return f ? f : arg_field(a->op.right);
	default:
		return NULL;
	}
}

int dp_print_convs(struct tep_event *ev, struct dp_conv *out, int max, const char **tail,
		   size_t *tail_len)
{
	const char *f = ev->print_fmt.format, *lit;
	struct tep_print_arg *a = ev->print_fmt.args;
	int n = 0;
	if (!f)
		return -1;
	lit = f;
	while (*f) {
		const char *spec;
		if (*f != '%') {
			f++;
			continue;
		}
		if (f[1] == '%') { /* a literal '%': the walk cannot keep it in one span */
			return -1;
		}
		spec = f++;
		while (*f && strchr("-+ #0123456789.*lhzjLqt", *f)) {
			if (*f == '*') { /* a width from an argument */
				if (!a)
					return -1;
				a = a->next;
			}
			f++;
		}
		if (!*f || n >= max || !a)
			return -1;
		if (*f == 'p' && f[1] && strchr("SsFfBIiMmUhEKRrx", f[1])) {
			f++;
			while (*f && strchr("SsFfBIiMmUhEKRrx46bclpnsRx", *f) && *f != ' ')
				f++;
		} else {
			f++;
		}
		out[n].lit = lit;
		out[n].lit_len = (size_t)(spec - lit);
		out[n].spec = spec;
		out[n].spec_len = (size_t)(f - spec);
		out[n].field = arg_field(a);
		n++;
		a = a->next;
		lit = f;
	}
	*tail = lit;
	*tail_len = (size_t)(f - lit);
	return n;
}

void dp_push_symbols(lua_State *L, struct tep_event *ev)
{
	lua_newtable(L);
	push_symbols(L, ev->print_fmt.args, lua_gettop(L));
}

int dp_push_event_format(lua_State *L, struct tep_event *ev)
{
	int n = 0;
	lua_createtable(L, 0, 6);
	lua_pushstring(L, ev->name);
	lua_setfield(L, -2, "name");
	if (ev->system) {
		lua_pushstring(L, ev->system);
		lua_setfield(L, -2, "system");
	}
	lua_pushinteger(L, ev->id);
	lua_setfield(L, -2, "id");
	if (ev->print_fmt.format) {
		lua_pushstring(L, ev->print_fmt.format);
		lua_setfield(L, -2, "print_fmt");
	}
	lua_newtable(L);
	push_fields(L, ev->format.common_fields, &n, 1);
	push_fields(L, ev->format.fields, &n, 0);
	lua_setfield(L, -2, "fields");
	dp_push_symbols(L, ev);
	lua_setfield(L, -2, "symbols");
	return 1;
}

/***
 * Parse the text of an event's `format` file (libtraceevent).
 * @function parse_format
 * @tparam string text
 * @tparam[opt="unknown"] string system
 * @treturn table `{ name, id, system, print_fmt, fields = {{name, type,
 *   offset, size, signed, common, arraylen}...}, symbols = { field = {[n] =
 *   name} } }`
 */
static int format_parse(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	const char *sys = luaL_optstring(L, 2, "unknown");
	struct tep_handle *tep = tep_alloc();
	struct tep_event *ev = NULL;
	enum tep_errno err;
	char msg[256];
	/* libtraceevent calls a text without a name line an allocation
	 * failure: say what is wrong with it instead */
	if (strncmp(text, "name: ", 6) != 0 || !strstr(text, "\nformat:")) {
		if (tep)
			tep_free(tep);
		return luaL_error(L, "cannot parse event format: not the text of an "
				  "event's format file (a 'name:' line, then 'ID:' and 'format:')");
	}
	if (!tep)
		return luaL_error(L, "out of memory");
	err = tep_parse_format(tep, &ev, text, len, sys);
	if (err || !ev) {
		tep_strerror(tep, err, msg, sizeof(msg));
		tep_free(tep);
		return luaL_error(L, "cannot parse event format: %s", msg);
	}
	/* pushing may raise (memory): the tep would leak, which is acceptable
	 * only on out-of-memory; keep the work in between small */
	dp_push_event_format(L, ev);
	tep_free(tep);
	return 1;
}

void dp_format_open(lua_State *L)
{
	lua_pushcfunction(L, format_parse);
	lua_setfield(L, -2, "parse_format");
}
