rockspec_format = "3.0"
package = "dropprobe"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout: luarocks make
}
description = {
  summary = "Find where and why the Linux kernel drops packets, from Lua, with only tracefs",
  detailed = [[
    A Lua 5.4 module in C over libtracefs and libtraceevent: private tracefs
    instances, trace events with filters and triggers, and a C record reader
    for trace_pipe (text) and the per-CPU binary buffers (raw), plus drop-hunting
    recipes and the `dropprobe` command.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "argparse >= 0.7",   -- the dropprobe command (Debian: lua-argparse)
  "lua-cjson >= 2.1",  -- JSON output and the exporter (Debian: lua-cjson)
  "luasocket >= 3.0",  -- the exporter's endpoint, timers (Debian: lua-socket)
}
external_dependencies = {
  LIBTRACEFS = { header = "tracefs/tracefs.h", library = "tracefs" },
  LIBTRACEEVENT = { header = "traceevent/event-parse.h", library = "traceevent" },
  LIBTRACECMD = { header = "trace-cmd/trace-cmd.h", library = "tracecmd" },
  LIBBPF = { header = "bpf/btf.h", library = "bpf" },
  LIBPCAP = { header = "pcap/pcap.h", library = "pcap" },
}
build = {
  -- the Makefile builds the module (with what luarocks found) and installs
  -- every file of lua/dropprobe/ and the C module: the file lists live
  -- there only
  type = "make",
  build_target = "rock",
  install_target = "rock-install",
  build_variables = {
    CFLAGS = "$(CFLAGS)", LIBFLAG = "$(LIBFLAG)", LUA_INCDIR = "$(LUA_INCDIR)",
    LIBTRACEFS_INCDIR = "$(LIBTRACEFS_INCDIR)", LIBTRACEFS_LIBDIR = "$(LIBTRACEFS_LIBDIR)",
    LIBTRACEEVENT_INCDIR = "$(LIBTRACEEVENT_INCDIR)", LIBTRACEEVENT_LIBDIR = "$(LIBTRACEEVENT_LIBDIR)",
    LIBTRACECMD_INCDIR = "$(LIBTRACECMD_INCDIR)", LIBTRACECMD_LIBDIR = "$(LIBTRACECMD_LIBDIR)",
    LIBBPF_INCDIR = "$(LIBBPF_INCDIR)", LIBBPF_LIBDIR = "$(LIBBPF_LIBDIR)",
    LIBPCAP_INCDIR = "$(LIBPCAP_INCDIR)", LIBPCAP_LIBDIR = "$(LIBPCAP_LIBDIR)",
  },
  install_variables = { LUADIR = "$(LUADIR)", LIBDIR = "$(LIBDIR)" },
  install = {
    bin = { dropprobe = "bin/dropprobe" },
  },
}
