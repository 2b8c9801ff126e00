#!/bin/sh
# `make demo` prints what README.md shows: the lines of README's demo block
# (the one that starts with the spam_train command line) appear in the
# demo's output in that order, `...` standing for any lines, timings and the
# machine's backend line aside. This also pins the showcase: ham.eml must
# come out ham and spam.eml spam. Builds nothing new (the demo's programs
# must be built) and takes a few seconds; `make check-build` runs it.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check_demo: FAILED: $*" >&2; exit 1; }
cd "$src"

# README's block: from the spam_train line of make demo to the closing fence
awk '/^```/ { if (inb) exit; next } /^build\/bin\/spam_train --data data\/spam-sample --model build\/demo/ { inb = 1 } inb' \
    README.md > "$tmp/readme"
[ -s "$tmp/readme" ] || fail "README.md has no block showing make demo's output"
make --no-print-directory BUILD="$build" demo DEMO_MODEL="$tmp/spam.safetensors" > "$tmp/out" 2>&1 ||
    { cat "$tmp/out"; fail "make demo failed"; }

# timings and the backend line vary by machine; the demo's model path is ours
norm() {
    sed -e 's/time=[0-9.]*s/time=T/; s/ in [0-9.]*s/ in Ts/; s/ready in [0-9.]*s/ready in Ts/' \
        -e "s|$tmp/spam.safetensors|build/demo/spam.safetensors|g" -e 's|^make.*||' "$1" | grep -v '^backend: ' || true
}
norm "$tmp/readme" | grep -v '^\.\.\.$' > "$tmp/want"
norm "$tmp/out" > "$tmp/got"
# each wanted line, in order, somewhere after the previous one
awk 'NR == FNR { want[n++] = $0; next } i < n && $0 == want[i] { i++ } END {
        if (i < n) { print "check_demo: README line not printed (in this order) by make demo:\n  " want[i]; exit 1 } }' \
    "$tmp/want" "$tmp/got" || { echo "make demo printed:"; cat "$tmp/out"; fail "README's demo output is stale"; }
grep -q "^data/spam-sample-new/ham.eml	ham	" "$tmp/got" || fail "make demo did not label ham.eml ham"
grep -q "^data/spam-sample-new/spam.eml	spam	" "$tmp/got" || fail "make demo did not label spam.eml spam"
echo "check_demo: passed: make demo prints README's $(wc -l < "$tmp/want") lines; ham.eml ham, spam.eml spam"
