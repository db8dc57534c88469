/*
 * format.h - event formats through libtraceevent: the Lua description of a
 * format, the __print_symbolic tables, and the conversions of a print
 * format in order (what each prints, and the literal text around it), from
 * which the decoder picks field kinds and text records map what the kernel
 * printed back to field names.
 */
#ifndef DROPPROBE_FORMAT_H
#define DROPPROBE_FORMAT_H

#include <stddef.h>

#include "util.h"

struct tep_event;

#define DP_CONV_MAX 32

/* One conversion of a print format ("%pISpc", "%d") and the literal text
 * before it; field is the event field it prints (the first REC->field of
 * its argument: __print_symbolic(REC->reason, ...) prints reason), or NULL. */
struct dp_conv {
	const char *lit;
	size_t lit_len;
	const char *spec; /* from '%' to the conversion letter and its %p suffix */
	size_t spec_len;
	const char *field;
};

/*
 * The conversions of ev's print format, at most max, into out; the literal
 * after the last into *tail. Returns the count, or -1 when the format has
 * none or more than max (or a conversion this walker cannot pair with its
 * argument). Points into the event's own strings.
 */
int dp_print_convs(struct tep_event *ev, struct dp_conv *out, int max, const char **tail,
		   size_t *tail_len);

/* Push the Lua description of an event format (fields, symbols). */
int dp_push_event_format(lua_State *L, struct tep_event *ev);
/* Push { field = {[n] = name} } from the __print_symbolic tables. */
void dp_push_symbols(lua_State *L, struct tep_event *ev);
void dp_format_open(lua_State *L);

#endif
