#!/bin/sh
# Installs the Debian packages libllm needs to build and test, if missing.
# Quiet and quick when everything is already there.
#   scripts/deps.sh        what `make`, `make test` and `make asan` need
#   scripts/deps.sh fuzz   that plus clang and its libFuzzer runtime (`make fuzz`)
#   scripts/deps.sh abi    that plus abigail-tools' abidw/abidiff (`make abi-check`)
#   scripts/deps.sh mpi    that plus Open MPI (mpicc builds the MPI module
#                          libllm-mpi.so; mpirun runs the distributed tests)
#   scripts/deps.sh onnx   that plus the ONNX checker (python3-onnx) and, when
#                          node or npm is missing, Debian's nodejs and npm
#                          (`make onnx-check` runs ONNX Runtime from npm)
# protobuf-c (the ONNX exporter module libllm-onnx.so) is part of the default.
set -e
PKGS="build-essential pkg-config libopenblas-dev check libsubunit-dev libcjson-dev libmicrohttpd-dev python3-pytest python3-numpy libprotobuf-c-dev protobuf-c-compiler"
case "${1:-}" in
  "") ;;
  fuzz) PKGS="$PKGS clang libclang-rt-dev" ;;
  abi) PKGS="$PKGS abigail-tools" ;;
  mpi) PKGS="$PKGS libopenmpi-dev openmpi-bin" ;;
  onnx) PKGS="$PKGS python3-onnx"
        # a node from elsewhere (NodeSource's packages npm inside nodejs) is kept
        command -v node >/dev/null && command -v npm >/dev/null || PKGS="$PKGS nodejs npm" ;;
  *) echo "usage: $0 [fuzz|abi|mpi|onnx]" >&2; exit 2 ;;
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
