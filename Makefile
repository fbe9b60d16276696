# Everyday commands. The build itself is CMake (see CMakePresets.json).
.PHONY: all build deps test test-dev test-asan demo bench fuzz release clean format

all: build

deps:
	./scripts/install-deps.sh

build:
	@test -f build/CMakeCache.txt || cmake --preset dev >/dev/null
	cmake --build build -j2

release:
	@test -f build-release/CMakeCache.txt || cmake --preset release >/dev/null
	cmake --build build-release -j2

test-dev: build
	ctest --preset dev

test-asan:
	@test -f build-asan/CMakeCache.txt || cmake --preset asan >/dev/null
	cmake --build build-asan -j2
	ctest --preset asan

# The whole suite, in the warnings-as-errors build and again under
# address+undefined sanitizers.
test: test-dev test-asan

demo: deps build
	./scripts/demo.sh

bench: release
	./bench/run.sh

fuzz:
	@test -f build-fuzz/CMakeCache.txt || cmake --preset fuzz >/dev/null
	cmake --build build-fuzz -j2

format:
	clang-format -i $$(git ls-files '*.c' '*.h' | grep -v /gen/)

clean:
	rm -rf build build-asan build-release build-fuzz
