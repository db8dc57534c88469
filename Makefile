# lua-dropprobe - every task a few lines calling the real tools.
LUA        ?= lua5.4
LUA_VERSION = 5.4
LUAROCKS   ?= luarocks --lua-version $(LUA_VERSION)
BUSTED     ?= busted --lua=$(LUA)
CC         ?= cc
CFLAGS_W    = -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE
INCS        = -I/usr/include/lua$(LUA_VERSION) -I/usr/include/tracefs -I/usr/include/traceevent -I/usr/include/trace-cmd
LIBS        = -ltracefs -ltraceevent -ltracecmd
SRC         = $(wildcard lua-dropprobe/*.c)
HDR         = $(wildcard lua-dropprobe/*.h)
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# run the in-tree module (lua/ and build/) ahead of an installed one
INTREE      = LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;"

DEB_PACKAGES = lua5.4 liblua5.4-dev libtracefs-dev libtraceevent-dev libtracecmd-dev \
	lua-busted luarocks lua-cjson lua-argparse lua-check lua-ldoc lua-socket \
	gcc make pkg-config clang libclang-rt-14-dev valgrind trace-cmd

.PHONY: all build deps test unit demo lint clean install docs

all: build

# the module in place (build/dropprobe/core.so) for tests and the demo
build: build/dropprobe/core.so

build/dropprobe/core.so: $(SRC) $(HDR)
	@mkdir -p build/dropprobe
	$(CC) $(CFLAGS_W) -O2 -g -fPIC -shared $(INCS) -o $@ $(SRC) $(LIBS)

# Debian packages, installed only when missing (idempotent; root or sudo)
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

test: deps build
	$(BUSTED)

unit: build
	$(BUSTED) --exclude-tags=live

demo: deps build
	$(INTREE) $(LUA) examples/demo.lua

lint:
	luacheck lua spec examples bin

install: deps
	$(LUAROCKS) make --deps-mode=none rockspec/dropprobe-scm-1.rockspec

docs:
	ldoc .

clean:
	rm -rf build doc
