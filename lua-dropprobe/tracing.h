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

/* Whether dir is still a tracefs mount (1 for a tree given with
 * core.tracefs(dir)); 0 once someone unmounted it (umount -l too). */
int dp_tracefs_mounted(const char *dir);
/* Mount tracefs at a new directory of its own (/tmp/dropprobe-tracefs-*),
 * its path into buf: the way back to what this process made after tracefs
 * was unmounted under it. 0, or -1 with errno. */
int dp_tracefs_mount_private(char *buf, size_t len);
/* Unmount and remove what dp_tracefs_mount_private made. */
void dp_tracefs_umount_private(const char *dir);

#endif
