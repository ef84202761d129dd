# The two commands a new user runs: `make demo` and `make test`. Each installs what it needs
# (Debian packages, via scripts/install-deps.sh), configures, builds, then runs.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps configure build test demo bench soak asan tsan fuzz install clean format conformance

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
	@TTMEM_BENCH_CLI=$(BUILD_DIR)/src/cli/ttmem TTMEM_BENCH_DAEMON=$(BUILD_DIR)/src/daemon/ttmemd \
	  $(BUILD_DIR)/bench/ttmem_bench \
	  --benchmark_repetitions=$(BENCH_REPETITIONS) --benchmark_report_aggregates_only=true \
	  --benchmark_out=bench/results.json --benchmark_out_format=json
	@/usr/bin/python3 scripts/bench_summary.py bench/results.json
	@$(BUILD_DIR)/bench/ttmem_adapter_bench \
	  --benchmark_repetitions=$(BENCH_REPETITIONS) --benchmark_report_aggregates_only=true \
	  --benchmark_out=bench/adapter_results.json --benchmark_out_format=json
	@/usr/bin/python3 scripts/bench_summary.py bench/adapter_results.json
	@$(BUILD_DIR)/bench/ttmem_record_bench \
	  --benchmark_out=bench/record_results.json --benchmark_out_format=json

# The soak (docs/reliability.md#soak): sims in a loop against ttmemd for SOAK_SECONDS with a
# long-lived client and collector, asserting flat RSS and exact totals; then an hour's worth of
# allocation churn. `make test` runs a short version.
SOAK_SECONDS ?= 600
soak: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target ttmem_soak_tests
	@TTMEM_SOAK_SECONDS=$(SOAK_SECONDS) $(BUILD_DIR)/tests/soak/ttmem_soak_tests

# The whole test suite under sanitizers, each in its own build directory. The Python tests are
# left out: the interpreter itself is not instrumented.
SANITIZE_CTEST = ctest --output-on-failure -LE python
asan: deps
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTTMEM_BUILD_BENCH=OFF \
	  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  -DCMAKE_C_FLAGS="-fsanitize=address,undefined" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
	  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 $(SANITIZE_CTEST)

tsan: deps
	@cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTTMEM_BUILD_BENCH=OFF \
	  -DCMAKE_CXX_FLAGS="-fsanitize=thread -O1" -DCMAKE_C_FLAGS="-fsanitize=thread" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" >/dev/null
	@cmake --build build-tsan -j $(JOBS)
	@cd build-tsan && TSAN_OPTIONS=halt_on_error=1 $(SANITIZE_CTEST)

# Each fuzz target in fuzz/ for FUZZ_SECONDS, one after another, over a scratch copy of its
# corpus; fails if any finds a failing input (kept under build-fuzz/artifacts/). Clang only.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = segment recording legacy http_query http_response tt_metal_region json_reader
fuzz: deps
	@cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTTMEM_FUZZ=ON \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DTTMEM_BUILD_TESTS=OFF -DTTMEM_BUILD_BENCH=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Compiles integrations/tt-metal/src/adapter.cpp (syntax only, -Werror) against a real tt-metal
# source tree and the third-party headers that tree pins, checked out of git mirrors. Not part of
# `make test`: it needs the tree and the mirrors. TT_METAL_SRC is a checked-out tree, or a git
# directory with TT_METAL_COMMIT (default HEAD). See scripts/conformance.sh --help.
TT_METAL_COMMIT ?= HEAD
TT_METAL_DEPS ?= build-conformance/deps
conformance:
	@test -n "$(TT_METAL_SRC)" || { echo "usage: make conformance TT_METAL_SRC=<tt-metal tree or git dir> [TT_METAL_COMMIT=rev]"; exit 2; }
	@scripts/conformance.sh --src "$(TT_METAL_SRC)" --commit "$(TT_METAL_COMMIT)" --deps "$(TT_METAL_DEPS)"

install: build
	@cmake --install $(BUILD_DIR)

format:
	@git ls-files '*.h' '*.hpp' '*.cpp' | xargs clang-format -i

clean:
	@rm -rf $(BUILD_DIR)
