# The two commands a new user runs: `make demo` and `make test`. Each installs what it needs
# (Debian packages, via scripts/install-deps.sh), configures, builds, then runs.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps configure build test demo bench install clean format

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure

demo: build
	@scripts/demo.sh $(BUILD_DIR)

# Benchmarks with repetitions (median and p99), written to bench/results.json.
BENCH_REPETITIONS ?= 10
bench: build
	@TTMEM_BENCH_CLI=$(BUILD_DIR)/src/cli/ttmem $(BUILD_DIR)/bench/ttmem_bench \
	  --benchmark_repetitions=$(BENCH_REPETITIONS) --benchmark_report_aggregates_only=true \
	  --benchmark_out=bench/results.json --benchmark_out_format=json
	@/usr/bin/python3 scripts/bench_summary.py bench/results.json

install: build
	@cmake --install $(BUILD_DIR)

format:
	@git ls-files '*.h' '*.hpp' '*.cpp' | xargs clang-format -i

clean:
	@rm -rf $(BUILD_DIR)
