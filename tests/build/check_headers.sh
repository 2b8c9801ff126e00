#!/bin/sh
# Every public header compiles on its own (it includes what it needs) as
# C99, C11 and C++11, pedantic, warnings as errors: a program may include any
# one of them first, in C or C++ (include/llm/common.h: LLM_EXTERN_C_BEGIN).
# C99 and C++ reject what C11 allows, e.g. a typedef repeated in two headers.
# `make check-build` runs it; CC and CXX pick the compilers.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-cc}
cxx=${CXX:-c++}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0
n=0
for h in "$src"/include/llm/*.h; do
    name=$(basename "$h")
    printf '#include "llm/%s"\n#include "llm/%s" /* twice: the include guard */\nint llm_header_check_%s;\n' \
        "$name" "$name" "$(echo "$name" | tr -c 'a-z0-9\n' _)" > "$tmp/one.c"
    for std in c99 c11; do
        $cc -std=$std -pedantic -Wall -Wextra -Werror -I"$src/include" -fsyntax-only "$tmp/one.c" 2> "$tmp/err" ||
            { echo "check_headers: $name as $std:"; cat "$tmp/err"; bad=1; }
    done
    $cxx -x c++ -std=c++11 -pedantic -Wall -Wextra -Werror -I"$src/include" -fsyntax-only "$tmp/one.c" 2> "$tmp/err" ||
        { echo "check_headers: $name as C++11:"; cat "$tmp/err"; bad=1; }
    n=$((n + 1))
done
[ $bad -eq 0 ] || { echo "check_headers: FAILED" >&2; exit 1; }
echo "check_headers: passed: $n headers alone as C99, C11 and C++11 (-pedantic -Werror)"
