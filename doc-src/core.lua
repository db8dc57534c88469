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
-- While an instance's event uses it, that instance removes it after its events
-- (so it may be closed before the instance), and `close` returns true.
-- @function Kprobe:close

--- Whether it is in the kernel.
-- @function Kprobe:is_created
-- @treturn boolean

--- Counting in C (`count.c`): events read straight from the raw buffers (or a
-- trace.dat, or a saved text) into a C hash table keyed by fields and, with a
-- `stacktrace` key, by the stack that follows the event on its CPU. Made by
-- `core.counter(inst, spec)`, `core.count_dat(path, spec)`,
-- `core.count_text(path, spec)`; `dropprobe.hist` is the public face. spec:
-- `system`, `event`, `keys` (fields, `.sym`/`.sym-offset`, `stacktrace`),
-- `values` (fields summed), `size` (most entries), `systems` (live).
-- @type Counter

--- Read what the buffers have (live counters), waiting up to `ms` when nothing.
-- @function Counter:poll
-- @tparam[opt=0] integer ms
-- @treturn integer|nil events read, or nil and "interrupted"

--- The counts: rows (keys by field name, a reason by the format's name,
-- `stack` = frames, `hitcount`, summed values) and totals (`hits`,
-- `entries`, `dropped` for a full table, `lost` ring-buffer events,
-- `without_stack`).
-- @function Counter:rows
-- @treturn table rows
-- @treturn table totals

--- Close it; idempotent; also `__close` and `__gc`.
-- @function Counter:close

--- Module functions of `dropprobe.core`.
-- @section functions

--- The members of a kernel enum from its BTF (`btf.c`, libbpf's BTF API; no
-- BPF program is loaded): `core.btf_enum("skb_drop_reason").SKB_CONSUMED`.
-- @function btf_enum
-- @tparam string name the enum's name
-- @tparam[opt="/sys/kernel/btf/vmlinux"] string path a BTF file
-- @treturn table|nil `{ NAME = value, ... }`, or nil and a message

--- Where the members of a kernel struct are, from its BTF (`btf.c`, libbpf):
-- `core.btf_struct("sk_buff").head.offset`; anonymous structs and unions are
-- walked into, bitfields left out.
-- @function btf_struct
-- @tparam string name the struct's name
-- @tparam[opt="/sys/kernel/btf/vmlinux"] string path a BTF file
-- @treturn table|nil `{ member = { offset =, size =, pointer = } }`, or nil and a message

--- A kernel function and its parameters from the BTF (`btf.c`, libbpf): whether
-- the kernel kept `name` as a function, and where a probe at its entry finds each
-- argument (`dp.drop_hook()` reads it: no table of versions). The kernel's own BTF
-- is parsed once per process and kept.
-- @function btf_func
-- @tparam string name
-- @tparam[opt="/sys/kernel/btf/vmlinux"] string path a BTF file
-- @treturn table|nil `{ "sk", "skb", "reason" }` in order, or nil and a message

--- The headers in bytes a drop probe fetched from `skb->head` (`packet.c`):
-- IPv4, IPv6 behind its extension headers, TCP, UDP, ICMP, ICMPv6. A header too
-- short to be one (IHL < 5) still gives its addresses, with `malformed` saying why.
-- @function decode_packet
-- @tparam string bytes
-- @tparam integer nh the network header's offset in bytes
-- @treturn table|nil `{ family, saddr, daddr, proto, sport, dport, type, code, len,
-- malformed }`, or nil when no IP header is there

--- Whether a string is an address or a prefix the packet condition takes
-- (`packet.c`: `127.0.0.1`, `[::1]`, `127.0.0.0/8`, `fe80::/10`; names are
-- resolved before, `util.resolve_host`).
-- @function parse_prefix
-- @tparam string s
-- @treturn integer|nil family (4 or 6), or nil and a message
-- @treturn integer the prefix length

--- A drop's stack from the function that dropped it (`record.c`): the tracing
-- machinery and the freeing function at the top left out, the one rule every
-- record's stack follows (unless `raw_stacks`) and `dropprobe.hist` applies to
-- counted stacks.
-- @function drop_frames
-- @tparam {string,...} stack frames as `fn+0xoff/0xsize`
-- @tparam[opt] integer depth at most this many frames
-- @treturn {string,...} a new table

--- The entries of a directory, sorted, without `.` and `..` (no shell).
-- @function dir
-- @tparam string path
-- @treturn table|nil names, or nil and a message
