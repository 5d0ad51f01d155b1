# Convenience wrapper over CMake. `make run` installs what is missing, builds and
# starts the broker with its embedded defaults; `make test` runs the whole suite.
BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: deps build run test asan fuzz coverage clean install

deps:
	./tools/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Installs binaries, man pages, conf/sol.conf and the systemd unit where Debian
# expects them (see CMakeLists.txt). PREFIX=/usr/local by default; DESTDIR
# stages the tree elsewhere, e.g. make install DESTDIR=/tmp/root.
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

run: build
	./$(BUILD)/sol

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSOL_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j $(JOBS)

fuzz: deps
	./tests/fuzz/run-fuzz.sh $${FUZZ_SECONDS:-60}

coverage: deps
	./tools/coverage.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz build-cov
