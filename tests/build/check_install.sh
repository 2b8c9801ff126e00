#!/bin/sh
# `make LLM_CUDA=0` then `make install` installs what was built: no nvcc runs
# (a fake one on the search path records any call) and no libllm-cuda.so or
# libllm-mpi.so is installed, even where the build tree holds them from an
# earlier build with other settings; BINDIR gets exactly the programs that
# README's install line names. Works on a copy of an existing build tree
# (argument 1, default build), so it builds nothing and takes seconds.
# `make check-build` runs it.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build="$src/$build" ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check_install: FAILED: $*" >&2; exit 1; }

[ -d "$build/obj" ] || fail "no build tree at $build (run make first)"
cp -a "$build" "$tmp/build"
mkdir -p "$tmp/cuda/bin" "$tmp/prefix"
printf '#!/bin/sh\necho "$*" >> "%s/nvcc.calls"\nexit 1\n' "$tmp" > "$tmp/cuda/bin/nvcc"
chmod +x "$tmp/cuda/bin/nvcc"
export CUDA_HOME="$tmp/cuda" PATH="$tmp/cuda/bin:$PATH"

cd "$src"
make BUILD="$tmp/build" LLM_CUDA=0 LLM_MPI=0 lib examples > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "make LLM_CUDA=0 failed"; }
make BUILD="$tmp/build" install PREFIX="$tmp/prefix" > "$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "make install failed"; }
[ ! -e "$tmp/nvcc.calls" ] || fail "make install ran nvcc: $(head -n 1 "$tmp/nvcc.calls")"
[ ! -e "$tmp/prefix/lib/libllm-cuda.so" ] || fail "make install installed libllm-cuda.so from a LLM_CUDA=0 build"
[ ! -e "$tmp/prefix/lib/libllm-mpi.so" ] || fail "make install installed libllm-mpi.so from a LLM_MPI=0 build"
for f in include/llm/llm.h lib/libllm.a lib/libllm.so lib/libllm.so.1 lib/pkgconfig/llm.pc; do
    [ -e "$tmp/prefix/$f" ] || fail "make install did not install $f"
done

# the programs installed are the ones README's install line names
installed=$(ls "$tmp/prefix/bin" | sort | tr '\n' ' ')
line=$(awk 'BEGIN { RS = "" } /make install PREFIX=/ { gsub(/\n/, " "); print; exit }' README.md)
[ -n "$line" ] || fail "README has no paragraph about make install PREFIX="
for p in $installed; do
    echo "$line" | grep -q "\`$p\`" || fail "README's install line does not name bin/$p"
done
named=$(echo "$line" | grep -o '`[a-z_]*`' | tr -d '`' | grep -E '^(spam|lm|llm)_' | sort | tr '\n' ' ')
[ "$named" = "$installed" ] || fail "README's install line names '$named', make install put '$installed' in bin/"

make BUILD="$tmp/build" uninstall PREFIX="$tmp/prefix" > /dev/null 2>&1 || fail "make uninstall failed"
[ -z "$(find "$tmp/prefix" -type f)" ] || fail "make uninstall left $(find "$tmp/prefix" -type f | head -n 1)"
echo "check_install: passed: no nvcc, no modules of other settings; bin/: $installed"
