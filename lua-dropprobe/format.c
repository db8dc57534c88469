/*
 * format.c - event formats through libtraceevent: fields with type, offset,
 * size and signedness, and the symbol tables of __print_symbolic (the drop
 * reasons of skb:kfree_skb come from there; nothing is hard-coded).
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

/* core.parse_format(text [, system]) -> format table */
static int format_parse(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	const char *sys = luaL_optstring(L, 2, "unknown");
	struct tep_handle *tep = tep_alloc();
	struct tep_event *ev = NULL;
	enum tep_errno err;
	char msg[256];
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
