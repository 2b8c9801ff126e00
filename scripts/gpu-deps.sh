#!/bin/sh
# Fetches the Debian packages that scripts/gpu-check.sh needs on a GPU machine
# that has nvcc and a C compiler but no package registry and none of
# libllm's build dependencies (OpenBLAS, Check, cJSON, libmicrohttpd).
# Run it where Debian's mirrors are reachable; it writes the .deb files into
# gpu-deps/ (git-ignored), which then travels with the tree to the GPU
# machine. gpu-check.sh unpacks them with `dpkg -x` into a private prefix;
# nothing is installed on either machine.
#   usage: scripts/gpu-deps.sh [DIR]      (default DIR: gpu-deps)
set -eu
cd "$(dirname "$0")/.."
DIR=${1:-gpu-deps}

# What the build and tests link against, and the shared libraries those
# need at run time. libc, libgcc and libstdc++ are assumed present (a
# machine with nvcc has them).
PKGS="libopenblas0 libopenblas0-pthread libopenblas-dev libopenblas-pthread-dev libgfortran5 libquadmath0
check libsubunit0 libsubunit-dev
libcjson1 libcjson-dev
libmicrohttpd12 libmicrohttpd-dev libgnutls30 libgmp10 libhogweed6 libidn2-0 libnettle8 libp11-kit0
libtasn1-6 libunistring2 libffi8"
BASE="libc6 libgcc-s1 gcc-12-base libstdc++6 mawk debconf libcrypt1 libselinux1 zlib1g libzstd1 liblzma5 libbz2-1.0 libpcre2-8-0 libmd0"
# Run-time dependencies only: the -dev packages' own -dev dependencies
# (e.g. libgnutls28-dev) are headers nothing here includes.
RUNTIME="libopenblas0-pthread libgfortran5 libsubunit0 libcjson1 libmicrohttpd12 libgnutls30"

if ! apt-cache show libopenblas0-pthread >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq; else
    echo "gpu-deps: apt has no package lists; run 'apt-get update' as root first" >&2; exit 1; fi
fi

# Every run-time dependency must be in PKGS or assumed present. (The lists
# are split into words on purpose.)
# shellcheck disable=SC2086
ALL=" $(printf '%s ' $PKGS $BASE)"
missing=""
# shellcheck disable=SC2086
for d in $(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
             --no-replaces --no-enhances $RUNTIME 2>/dev/null | sed -n 's/^ *\(Pre\)\{0,1\}Depends: //p' | tr -d '<>' | sort -u); do
  case "$ALL" in *" $d "*) ;; *) missing="$missing $d" ;; esac
done
if [ -n "$missing" ]; then
  echo "gpu-deps: note: not fetched (assumed present on the GPU machine):$missing"
fi

rm -rf "$DIR.tmp"
mkdir -p "$DIR.tmp"
# shellcheck disable=SC2086
(cd "$DIR.tmp" && apt-get -o APT::Sandbox::User=root download $PKGS >/dev/null)
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
(cd "$DIR" && for f in *.deb; do
  printf '%s %s\n' "$(dpkg-deb -f "$f" Package)=$(dpkg-deb -f "$f" Version)" "$(sha256sum "$f" | cut -c1-16)"
done) > "$DIR/MANIFEST"
echo "gpu-deps: $(find "$DIR" -name '*.deb' | wc -l) packages, $(du -sh "$DIR" | cut -f1) in $DIR/ (list: $DIR/MANIFEST)"
# the peer benchmark scripts (only the checkout reaches a GPU machine)
PEERS_SRC=${PEERS_DIR:-../shared/peers}
if [ -d "$PEERS_SRC" ]; then
  mkdir -p "$DIR/peers" && cp "$PEERS_SRC"/*.py "$DIR/peers/" && echo "gpu-deps: peer scripts copied to $DIR/peers/"
fi
# the SpamAssassin corpus, packed, for gpu-check's full-corpus GPU run
CORPUS_SRC=${CORPUS_DIR:-../shared/data/spamassassin}
if [ -d "$CORPUS_SRC/train" ]; then
  mkdir -p gpu-data
  tar -czf gpu-data/spamassassin.tar.gz -C "$(dirname "$CORPUS_SRC")" "$(basename "$CORPUS_SRC")" &&
    echo "gpu-deps: corpus packed into gpu-data/spamassassin.tar.gz (carry gpu-data too)"
fi
