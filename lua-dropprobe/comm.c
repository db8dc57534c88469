/*
 * comm.c - names for the pids a batch did not know (see comm.h).
 */
#include "comm.h"

#include <stdlib.h>
#include <string.h>

#include <event-parse.h>
#include <tracefs.h>

#include "record.h"
#include "util.h"

void dp_misses_add(lua_State *L, struct dp_misses *m, int ref, int pid)
{
	if (m->n == m->cap) {
		int nc = m->cap ? m->cap * 2 : 16;
		struct dp_miss *nv = realloc(m->v, sizeof(*nv) * (size_t)nc);
		if (!nv)
			luaL_error(L, "out of memory");
		m->v = nv;
		m->cap = nc;
	}
	m->v[m->n].ref = ref;
	m->v[m->n].pid = pid;
	m->n++;
}

void dp_misses_fix(lua_State *L, struct dp_misses *m, struct tep_handle *tep, int refs,
		   int keys, int commtab)
{
	if (!m->n)
		return;
	if (tep && dp_mono() - m->last_reload > 0.2) {
		/* pids new since the last read: the kernel's saved_cmdlines may know them */
		tracefs_load_cmdlines(dp_tracing_dir_arg(), tep);
		m->last_reload = dp_mono();
	}
	lua_newtable(L); /* pids looked up in vain in this batch */
	for (int i = 0; i < m->n; i++) {
		int pid = m->v[i].pid;
		if (lua_rawgeti(L, commtab, pid) != LUA_TSTRING) {
			const char *c = tep ? tep_data_comm_from_pid(tep, pid) : NULL;
			char buf[64];
			lua_pop(L, 1);
			if (lua_rawgeti(L, -1, pid) != LUA_TNIL) {
				lua_pop(L, 1);
				continue;
			}
			lua_pop(L, 1);
			if (c && strcmp(c, "<...>") != 0) {
				lua_pushstring(L, c);
			} else if (dp_proc_comm(pid, buf, sizeof(buf))) {
				lua_pushstring(L, buf);
			} else {
				/* gone: "<...>" stays in the record, the pid is tried again */
				lua_pushboolean(L, 1);
				lua_rawseti(L, -2, pid);
				continue;
			}
			lua_pushvalue(L, -1);
			lua_rawseti(L, commtab, pid);
		}
		if (lua_rawgeti(L, refs, m->v[i].ref) == LUA_TTABLE) {
			lua_insert(L, -2);
			dp_setkey(L, keys, DP_K_COMM);
			lua_pop(L, 1);
		} else {
			lua_pop(L, 2);
		}
	}
	lua_pop(L, 1);
	m->n = 0;
}

void dp_misses_free(struct dp_misses *m)
{
	free(m->v);
	m->v = NULL;
	m->n = m->cap = 0;
}
