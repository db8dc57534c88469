--- The C core: the tracefs objects behind `dropprobe` (reference only; the
-- code is in `lua-dropprobe/*.c`). Use it through `require "dropprobe"`,
-- which adds option defaults and reason names on top.
-- @module dropprobe.core

--- A private tracefs instance (`instance.c`). Made by `dropprobe.instance`.
-- @type Instance

--- Close: readers first, then each event's triggers, filter and enable, the
-- tracer, then the instance directory, then the kprobes its events used.
-- Idempotent; also `__close` and `__gc`.
-- @function Instance:close

--- The instance's name.
-- @function Instance:name
-- @treturn string

--- Whether it was closed.
-- @function Instance:is_closed
-- @treturn boolean

--- Its directory in tracefs.
-- @function Instance:dir
-- @treturn string

--- Read one of its files (`trace_clock`, `per_cpu/cpu0/stats`, ...).
-- @function Instance:read_file
-- @tparam string name
-- @treturn string|nil contents, or nil and a message

--- Get or set its `tracing_on` (events and triggers of this instance only).
-- @function Instance:tracing
-- @tparam[opt] boolean on
-- @treturn boolean when called without argument

--- One event inside an Instance (`event.c`). Made by `Instance:event`.
-- @type Event

--- Enable the event in its instance.
-- @function Event:enable
-- @return the event

--- Disable it (a stacktrace trigger still fires: remove it or turn tracing off).
-- @function Event:disable
-- @return the event

--- Remove a trigger that was set through this object.
-- @function Event:untrigger
-- @tparam string spec as it was given

--- `{ system, name, enabled, closed, filter, triggers = {...} }`.
-- @function Event:info
-- @treturn table

--- The text of one of the event's files (`format`, `filter`, `trigger`, ...).
-- @function Event:read_file
-- @tparam string name
-- @treturn string

--- A reader of records (`pipe.c`, the read loop) over one source:
-- `src_text.c` (trace_pipe), `src_raw.c` (the per-CPU binary buffers),
-- `src_file.c` (a saved text), `src_dat.c` (a trace.dat). Made by
-- `Instance:pipe` (`core.text_pipe`, `core.raw_pipe`), `Instance:records` and
-- `dropprobe.open` (`core.open_text`, `core.open_dat`). Closing its instance
-- closes it.
-- @type Pipe

--- The next record, waiting at most `timeout` seconds (nil: waits).
-- @function Pipe:read
-- @tparam[opt] number timeout
-- @treturn table|nil a record, or nil and "timeout", "eof" or "interrupted"

--- The file descriptor to poll (text: trace_pipe; raw: CPU 0's buffer).
-- @function Pipe:fd
-- @treturn integer

--- Close it; idempotent; also `__close` and `__gc`.
-- @function Pipe:close

--- The instance it reads (nil for files).
-- @function Pipe:instance

--- A kprobe in the group `dropprobe` (`kprobe.c`). Made by `dropprobe.kprobe`.
-- @type Kprobe

--- The exact line the kernel gets.
-- @function Kprobe:definition
-- @treturn string

--- Write it into the kernel (through libtracefs' dynamic events).
-- @function Kprobe:create

--- Remove it from the kernel (only this probe); idempotent; also `__close`, `__gc`.
-- @function Kprobe:close

--- Whether it is in the kernel.
-- @function Kprobe:is_created
-- @treturn boolean

--- Module functions of `dropprobe.core`.
-- @section functions

--- The members of a kernel enum from its BTF (`btf.c`, libbpf's BTF API; no
-- BPF program is loaded): `core.btf_enum("skb_drop_reason").SKB_CONSUMED`.
-- @function btf_enum
-- @tparam string name the enum's name
-- @tparam[opt="/sys/kernel/btf/vmlinux"] string path a BTF file
-- @treturn table|nil `{ NAME = value, ... }`, or nil and a message

--- The entries of a directory, sorted, without `.` and `..` (no shell).
-- @function dir
-- @tparam string path
-- @treturn table|nil names, or nil and a message
