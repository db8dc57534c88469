/*
 * core.h - what luaopen_dropprobe_core (core.c) assembles: each object
 * file's open function, which adds its constructor and metatable to the
 * module table on top. One file per object; see the README's Layout for
 * how the files depend on each other (no file depends on core.c).
 */
#ifndef DROPPROBE_CORE_H
#define DROPPROBE_CORE_H

#include <lua.h>

void dp_tracefs_open(lua_State *L);  /* tracefs.c: core.tracefs */
void dp_format_open(lua_State *L);   /* format.c: core.parse_format */
void dp_btf_open(lua_State *L);      /* btf.c: core.btf_enum */
void dp_record_open(lua_State *L);   /* record.c: core.Record */
void dp_instance_open(lua_State *L); /* instance.c: core.instance */
void dp_event_open(lua_State *L);    /* event.c: core.event */
void dp_kprobe_open(lua_State *L);   /* kprobe.c: core.kprobe */
void dp_pipe_open(lua_State *L);     /* pipe.c: core.Pipe */
void dp_decode_open(lua_State *L);   /* decode.c: core.decode_packet */
/* the record sources, one file each */
void dp_src_text_open(lua_State *L); /* core.text_pipe(inst, opts): trace_pipe */
void dp_src_file_open(lua_State *L); /* core.open_text(path, opts): saved text */
void dp_src_raw_open(lua_State *L);  /* core.raw_pipe(inst, opts): per-CPU buffers */
void dp_src_dat_open(lua_State *L);  /* core.open_dat(path): trace.dat */
/* counting in C, where the kernel has no hist triggers, and over trace.dat */
void dp_count_open(lua_State *L);    /* count.c: core.counter, core.count_dat */
/* the dropped packets as a pcapng file */
void dp_pcapfile_open(lua_State *L); /* pcapfile.c: core.pcapng_open */
/* the path of each dropped packet: the functions that take an skb, and
 * the tracker that follows each skb through them */
void dp_btf_funcs_open(lua_State *L); /* btf_funcs.c: core.btf_skb_funcs */
void dp_src_path_open(lua_State *L);  /* src_path.c: core.path_pipe */
/* an instance's pages as a trace.dat (libtracecmd) */
void dp_datwriter_open(lua_State *L); /* datwriter.c: core.recorder, core.dat_check */

#endif
