# lua-dropprobe - every task a few lines calling the real tools.
LUA        ?= lua5.4
LUA_VERSION = 5.4
LUAROCKS   ?= luarocks --lua-version $(LUA_VERSION)
BUSTED     ?= busted --lua=$(LUA)
CC         ?= cc
CFLAGS_W    = -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE
# include paths and libraries from pkg-config (a module links no liblua)
PC_LIBS     = libtracefs libtraceevent libtracecmd libbpf libpcap
INCS        = $(shell pkg-config --cflags lua$(LUA_VERSION) $(PC_LIBS))
LIBS        = $(shell pkg-config --libs $(PC_LIBS))
SRC         = $(wildcard lua-dropprobe/*.c)
HDR         = $(wildcard lua-dropprobe/*.h)
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# run the in-tree module (lua/ and build/) ahead of an installed one
INTREE      = LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;"

DEB_PACKAGES = lua5.4 liblua5.4-dev libtracefs-dev libtraceevent-dev libtracecmd-dev \
	libbpf-dev libpcap-dev lua-busted luarocks lua-cjson lua-argparse lua-check lua-ldoc lua-socket \
	gcc make pkg-config clang libclang-rt-14-dev valgrind trace-cmd util-linux time procps bpftrace \
	qemu-system-x86 busybox-static kmod cpio xz-utils iproute2 nftables \
	prometheus prometheus-node-exporter tcpdump tshark

.PHONY: all build deps test unit demo lint clean install rock rock-install docs fuzz sanitize valgrind bench vmtest layers

all: build

# the module in place (build/dropprobe/core.so) for tests and the demo,
# the C test drivers of the text parser, of the counting table and of
# the kallsyms reader, and the
# loopback flood (bench/flood.c: senders pinned to every CPU) of the storm
# specs and the bench
build: build/dropprobe/core.so build/parse_driver build/ctable_driver build/ksym_driver build/flood

build/dropprobe/core.so: $(SRC) $(HDR)
	@pkg-config --exists --print-errors lua$(LUA_VERSION) $(PC_LIBS)
	@# datwriter.c declares libtracecmd 1.3's output functions (its private header is not installed)
	@pkg-config --atleast-version=1.3 --max-version=1.3.99 libtracecmd || \
		{ echo "libtracecmd $$(pkg-config --modversion libtracecmd): datwriter.c is pinned to the 1.3 ABI (trace-cmd 3.1)" >&2; exit 1; }
	@mkdir -p build/dropprobe
	$(CC) $(CFLAGS_W) -O2 -g -fPIC -shared $(INCS) -o $@.tmp $(SRC) $(LIBS)
	@mv $@.tmp $@  # a new file, not rewritten in place: running readers keep theirs

build/parse_driver: spec/c/parse_driver.c lua-dropprobe/parse.c lua-dropprobe/parse.h
	@mkdir -p build
	$(CC) $(CFLAGS_W) -O2 -g -o $@ spec/c/parse_driver.c lua-dropprobe/parse.c

build/ctable_driver: spec/c/ctable_driver.c lua-dropprobe/ctable.c lua-dropprobe/ctable.h
	@mkdir -p build
	$(CC) $(CFLAGS_W) -O2 -g -Ilua-dropprobe -o $@ spec/c/ctable_driver.c lua-dropprobe/ctable.c

build/ksym_driver: spec/c/ksym_driver.c lua-dropprobe/ksym.c lua-dropprobe/ksym.h lua-dropprobe/lines.c lua-dropprobe/lines.h \
		lua-dropprobe/parse.c lua-dropprobe/parse.h
	@mkdir -p build
	$(CC) $(CFLAGS_W) -O2 -g -Ilua-dropprobe $(shell pkg-config --cflags libtraceevent) -o $@ \
		spec/c/ksym_driver.c lua-dropprobe/ksym.c lua-dropprobe/lines.c lua-dropprobe/parse.c \
		$(shell pkg-config --libs libtraceevent)

# the C core's dependency picture from its object files (nm): each file's
# layer and what it uses; fails on a dependency circle
OBJ = $(patsubst lua-dropprobe/%.c,build/obj/%.o,$(SRC))
build/obj/%.o: lua-dropprobe/%.c $(HDR)
	@mkdir -p build/obj
	$(CC) $(CFLAGS_W) -O2 -fPIC $(INCS) -c -o $@ $<

layers: $(OBJ)
	@rm -f $(filter-out $(OBJ),$(wildcard build/obj/*.o))
	$(LUA) tools/layers.lua build/obj lua-dropprobe

# libFuzzer over the text parser and over the binary decoder, FUZZ_SECONDS
# each (CI: 60); a crash stops it with a non-zero exit and leaves
# build/fuzz-crash-* (or build/fuzz-raw-crash-*, build/fuzz-count-crash-*) to turn into a fixture
FUZZ_SECONDS ?= 60
FUZZ_CC = clang $(CFLAGS_W) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
build/fuzz_parse: fuzz/fuzz_parse.c lua-dropprobe/parse.c lua-dropprobe/parse.h lua-dropprobe/packet.c lua-dropprobe/packet.h \
		lua-dropprobe/pcapng.c lua-dropprobe/pcapng.h
	@mkdir -p build/fuzz-corpus
	$(FUZZ_CC) -o $@ fuzz/fuzz_parse.c lua-dropprobe/parse.c lua-dropprobe/packet.c lua-dropprobe/pcapng.c

RAW_SRC = lua-dropprobe/decode.c lua-dropprobe/format.c lua-dropprobe/ksym.c lua-dropprobe/lines.c lua-dropprobe/parse.c \
	lua-dropprobe/record.c lua-dropprobe/join.c lua-dropprobe/packet.c lua-dropprobe/pktfilter.c
build/fuzz_raw: fuzz/fuzz_raw.c $(RAW_SRC) $(HDR)
	@mkdir -p build/fuzz-raw-corpus
	$(FUZZ_CC) $(INCS) -o $@ fuzz/fuzz_raw.c $(RAW_SRC) -llua$(LUA_VERSION) -ltraceevent -lpcap

build/fuzz_count: fuzz/fuzz_count.c lua-dropprobe/ctable.c lua-dropprobe/ctable.h
	@mkdir -p build/fuzz-count-corpus
	$(FUZZ_CC) -Ilua-dropprobe -o $@ fuzz/fuzz_count.c lua-dropprobe/ctable.c

fuzz: build/fuzz_parse build/fuzz_raw build/fuzz_count
	@echo "fuzzing the text parser for $(FUZZ_SECONDS) s (log: build/fuzz.log)"
	@build/fuzz_parse -timeout=10 -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -artifact_prefix=build/fuzz- \
		build/fuzz-corpus spec/fixtures spec/fixtures/fuzz > build/fuzz.log 2>&1; \
		rc=$$?; tail -n 3 build/fuzz.log; exit $$rc
	@echo "fuzzing the binary decoder for $(FUZZ_SECONDS) s (log: build/fuzz-raw.log)"
	@build/fuzz_raw -timeout=10 -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=build/fuzz-raw- \
		build/fuzz-raw-corpus fuzz/corpus-raw > build/fuzz-raw.log 2>&1; \
		rc=$$?; tail -n 3 build/fuzz-raw.log; exit $$rc
	@echo "fuzzing the counting table for $(FUZZ_SECONDS) s (log: build/fuzz-count.log)"
	@build/fuzz_count -timeout=10 -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=build/fuzz-count- \
		build/fuzz-count-corpus > build/fuzz-count.log 2>&1; \
		rc=$$?; tail -n 3 build/fuzz-count.log; exit $$rc

# the specs against a module built with AddressSanitizer and UBSan (the
# sanitizer runtime preloaded into lua5.4); any report aborts the run
ASAN_RT := $(shell clang -print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null)
SAN_ENV = DROPPROBE_CPATH="./build/asan/?.so" LD_PRELOAD=$(ASAN_RT) \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
build/asan/dropprobe/core.so: $(SRC) $(HDR)
	@mkdir -p build/asan/dropprobe
	clang $(CFLAGS_W) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
		-fno-sanitize-recover=all -shared-libsan -fPIC -shared $(INCS) -o $@.tmp $(SRC) $(LIBS)
	@mv $@.tmp $@

sanitize: build build/asan/dropprobe/core.so
	$(SAN_ENV) $(BUSTED) --exclude-tags=proc -o utfTerminal

# valgrind over a workload that makes, uses and closes every object, then
# closes the Lua state: no leak definitely lost, no invalid access
valgrind: build
	DROPPROBE_RUNDIR=build/run valgrind -q --keep-debuginfo=yes --num-callers=30 --leak-check=full \
		--errors-for-leak-kinds=definite --show-leak-kinds=definite \
		--suppressions=spec/c/valgrind.supp --error-exitcode=1 $(LUA) spec/c/leakcheck.lua

# Debian packages, installed only when missing (idempotent; root or sudo)
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# everything CI checks; the specs run last: on this host, then the live
# specs on the stock kernels users run, Debian 11's 5.10, Debian 12's 6.1
# and 6.12 and Debian unstable's 7.2, under qemu, two at a time
# (tools/testall), so that one "N passed, N failed" line over all five
# closes the output
test: deps build lint layers
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory sanitize
	$(MAKE) --no-print-directory valgrind
	tools/testall

# the live specs inside one stock kernel under qemu: make vmtest KERNEL=5.10|6.1|6.12|7.2
KERNEL ?= 6.1
vmtest: deps build
	tools/vmtest $(KERNEL)

unit: build
	$(BUSTED) --exclude-tags=live

demo: deps build
	$(INTREE) $(LUA) examples/demo.lua

lint:
	luacheck lua spec examples bin bench tools

# side by side on the same loopback flood; BENCH_ARGS="--count 500000"
build/flood: bench/flood.c
	@mkdir -p build
	$(CC) $(CFLAGS_W) -O2 -o $@ bench/flood.c

# the kernel's part of a live reader's start-up and close, without the library
build/floor: bench/floor.c
	@mkdir -p build
	$(CC) $(CFLAGS_W) -O2 -o $@ bench/floor.c

bench: deps build build/floor
	$(LUA) bench/run.lua $(BENCH_ARGS)

# luarocks builds and installs through these two targets (the rockspec's
# build type is make), so the files are listed here only: every C file of
# lua-dropprobe/ and every module under lua/dropprobe/. The Lua modules of
# Debian's packages (argparse, cjson, socket) are not in any rocks tree:
# --deps-mode=none takes them as they are, once `make deps` installed them
install: deps
	$(LUAROCKS) make --deps-mode=none rockspec/dropprobe-scm-1.rockspec

# The rock's build takes what luarocks found (its CFLAGS, LIBFLAG, the Lua
# and the libraries' include and lib dirs, passed as build_variables), and
# pkg-config when it runs by hand; no -Werror: a user's compiler may warn
# about something new
ROCK_CFLAGS = $(if $(CFLAGS),$(CFLAGS),-O2 -fPIC)
ROCK_INCS = $(if $(LUA_INCDIR),-I$(LUA_INCDIR) -I$(LIBTRACEFS_INCDIR)/tracefs \
	-I$(LIBTRACEEVENT_INCDIR)/traceevent -I$(LIBTRACECMD_INCDIR)/trace-cmd -I$(LIBBPF_INCDIR) -I$(LIBPCAP_INCDIR),$(INCS))
ROCK_LIBS = $(if $(LIBTRACEFS_LIBDIR),-L$(LIBTRACEFS_LIBDIR) -L$(LIBTRACEEVENT_LIBDIR) \
	-L$(LIBTRACECMD_LIBDIR) -L$(LIBBPF_LIBDIR) -L$(LIBPCAP_LIBDIR)) -ltracefs -ltraceevent -ltracecmd -lbpf -lpcap
rock: $(SRC) $(HDR)
	@mkdir -p build/rock/dropprobe
	$(CC) -Wall -std=c11 -D_GNU_SOURCE $(ROCK_CFLAGS) $(if $(LIBFLAG),$(LIBFLAG),-shared) $(ROCK_INCS) \
		-o build/rock/dropprobe/core.so $(SRC) $(ROCK_LIBS)

LUA_MODULES = $(shell cd lua && find dropprobe -name '*.lua')
rock-install:
	@test -n "$(LUADIR)" && test -n "$(LIBDIR)" || { echo "rock-install: LUADIR and LIBDIR are set by luarocks" >&2; exit 2; }
	for m in $(LUA_MODULES); do install -D -m 644 lua/$$m $(LUADIR)/$$m || exit 1; done
	install -D -m 755 build/rock/dropprobe/core.so $(LIBDIR)/dropprobe/core.so

docs:
	ldoc .

clean:
	rm -rf build doc
