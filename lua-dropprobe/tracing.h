/*
 * tracing.h - finding tracefs (tracefs.c): what the objects that work in
 * it need before they touch it.
 */
#ifndef DROPPROBE_TRACING_H
#define DROPPROBE_TRACING_H

#include <stddef.h>

#include <lua.h>

/* Find (or, as root, mount) tracefs; its path into buf. On failure pushes
 * the message and returns -1. */
int dp_ensure_tracefs(lua_State *L, char *buf, size_t len);
/* The tracing dir the caller set with core.tracefs(dir), or NULL. */
const char *dp_tracefs_custom(void);

#endif
