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
}
external_dependencies = {
  LIBTRACEFS = { header = "tracefs/tracefs.h", library = "tracefs" },
  LIBTRACEEVENT = { header = "traceevent/event-parse.h", library = "traceevent" },
  LIBTRACECMD = { header = "trace-cmd/trace-cmd.h", library = "tracecmd" },
  LIBBPF = { header = "bpf/btf.h", library = "bpf" },
}
build = {
  type = "builtin",
  modules = {
    ["dropprobe.core"] = {
      sources = {
        "lua-dropprobe/btf.c", "lua-dropprobe/comm.c", "lua-dropprobe/core.c",
        "lua-dropprobe/count.c", "lua-dropprobe/decode.c", "lua-dropprobe/event.c",
        "lua-dropprobe/format.c", "lua-dropprobe/instance.c", "lua-dropprobe/join.c",
        "lua-dropprobe/kprobe.c", "lua-dropprobe/ksym.c", "lua-dropprobe/packet.c", "lua-dropprobe/parse.c",
        "lua-dropprobe/pipe.c", "lua-dropprobe/rawbuf.c", "lua-dropprobe/record.c",
        "lua-dropprobe/src_dat.c", "lua-dropprobe/src_file.c", "lua-dropprobe/src_raw.c",
        "lua-dropprobe/src_text.c", "lua-dropprobe/textdec.c", "lua-dropprobe/tracefs.c",
        "lua-dropprobe/util.c",
      },
      libraries = { "tracefs", "traceevent", "tracecmd", "bpf" },
      incdirs = {
        "$(LIBTRACEFS_INCDIR)/tracefs", "$(LIBTRACEEVENT_INCDIR)/traceevent",
        "$(LIBTRACECMD_INCDIR)/trace-cmd", "$(LIBBPF_INCDIR)",
        "lua-dropprobe",
      },
      libdirs = { "$(LIBTRACEFS_LIBDIR)", "$(LIBTRACEEVENT_LIBDIR)", "$(LIBTRACECMD_LIBDIR)", "$(LIBBPF_LIBDIR)" },
      defines = { "_GNU_SOURCE" },
    },
    ["dropprobe"] = "lua/dropprobe/init.lua",
    ["dropprobe.cli"] = "lua/dropprobe/cli.lua",
    ["dropprobe.kprobe"] = "lua/dropprobe/kprobe.lua",
    ["dropprobe.util"] = "lua/dropprobe/util.lua",
    ["dropprobe.tracefs"] = "lua/dropprobe/tracefs.lua",
    ["dropprobe.format"] = "lua/dropprobe/format.lua",
    ["dropprobe.instance"] = "lua/dropprobe/instance.lua",
    ["dropprobe.pipe"] = "lua/dropprobe/pipe.lua",
    ["dropprobe.record"] = "lua/dropprobe/record.lua",
    ["dropprobe.doctor"] = "lua/dropprobe/doctor.lua",
    ["dropprobe.hunt"] = "lua/dropprobe/hunt.lua",
    ["dropprobe.hist"] = "lua/dropprobe/hist.lua",
    ["dropprobe.exporter"] = "lua/dropprobe/exporter.lua",
    ["dropprobe.shell"] = "lua/dropprobe/shell.lua",
    ["dropprobe.recipes.stacks"] = "lua/dropprobe/recipes/stacks.lua",
    ["dropprobe.recipes.ports"] = "lua/dropprobe/recipes/ports.lua",
    ["dropprobe.recipes.top"] = "lua/dropprobe/recipes/top.lua",
  },
  install = {
    bin = { dropprobe = "bin/dropprobe" },
  },
}
