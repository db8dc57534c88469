#ifndef DROPPROBE_FORMAT_H
#define DROPPROBE_FORMAT_H
#include "util.h"
struct tep_event;
/* Push the Lua description of an event format (fields, symbols). */
int dp_push_event_format(lua_State *L, struct tep_event *ev);
/* Push { field = {[n] = name} } from the __print_symbolic tables. */
void dp_push_symbols(lua_State *L, struct tep_event *ev);
void dp_format_open(lua_State *L);
#endif
