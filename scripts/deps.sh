#!/bin/sh
# Installs the Debian packages libllm needs to build and test, if missing.
# Quiet and quick when everything is already there.
#   scripts/deps.sh        what `make`, `make test` and `make asan` need
#   scripts/deps.sh fuzz   that plus clang and its libFuzzer runtime (`make fuzz`)
#   scripts/deps.sh abi    that plus abigail-tools' abidw/abidiff (`make abi-check`)
#   scripts/deps.sh mpi    that plus Open MPI (mpicc builds the MPI module
#                          libllm-mpi.so; mpirun runs the distributed tests)
set -e
PKGS="build-essential pkg-config libopenblas-dev check libsubunit-dev libcjson-dev libmicrohttpd-dev python3-pytest python3-numpy"
case "${1:-}" in
  "") ;;
  fuzz) PKGS="$PKGS clang libclang-rt-dev" ;;
  abi) PKGS="$PKGS abigail-tools" ;;
  mpi) PKGS="$PKGS libopenmpi-dev openmpi-bin" ;;
  *) echo "usage: $0 [fuzz|abi|mpi]" >&2; exit 2 ;;
esac
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
  echo "deps: not root; run as root or install:$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing >/dev/null
