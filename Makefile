# Everyday commands; each is a thin wrapper over scripts/.
LUA_VERSIONS ?= 5.4 5.3 5.2 5.1 jit

.PHONY: deps build test demo bench lint clean

deps:
	scripts/install-deps

build:
	scripts/build $(LUA_VERSIONS)

test:
	scripts/test $(LUA_VERSIONS)

demo:
	scripts/demo

bench:
	bench/run

lint:
	luacheck lua spec examples bench

clean:
	rm -rf build build.luarocks bench/out
