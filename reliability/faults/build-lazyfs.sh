#!/usr/bin/env bash
# Builds LazyFS (https://github.com/dsrhaslab/lazyfs) for campaign 9
# (power-loss.sh) from a checkout of its source, with Debian's packages only.
#
#   bash reliability/faults/build-lazyfs.sh /path/to/lazyfs-source
#   LAZYFS=/path/to/lazyfs-source/lazyfs/build/lazyfs bash reliability/faults/power-loss.sh
#
# Upstream's CMake files download toml11 3.7.1 and spdlog 1.10.0 at
# configure time; Debian 12 packages exactly those versions, so this build
# uses them instead (libtoml11-dev, libspdlog-dev) and needs no network
# beyond the Debian mirror. Built and used here at upstream commit a47a5ba.
set -euo pipefail
src="${1:?usage: build-lazyfs.sh LAZYFS_SOURCE_DIR}"
[ -f "$src/libs/libpcache/CMakeLists.txt" ] || { echo "no LazyFS source in $src" >&2; exit 1; }
if ! dpkg -s libfuse3-dev fuse3 cmake g++ libspdlog-dev libtoml11-dev >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q libfuse3-dev fuse3 cmake g++ libspdlog-dev libtoml11-dev
fi
python3 - "$src" <<'PY'
import sys
src = sys.argv[1]
p = f"{src}/libs/libpcache/CMakeLists.txt"
s = open(p).read()
if "FetchContent" in s:
    a, b = s.index("include(FetchContent)"), s.index("set(warn_opts")
    s = s[:a] + "find_package(toml11 REQUIRED)\nfind_package(spdlog REQUIRED)\n\n" + s[b:]
    s = s.replace("toml11::toml11 spdlog)", "toml11::toml11 spdlog::spdlog)")
    open(p, "w").write(s)
p = f"{src}/lazyfs/CMakeLists.txt"
s = open(p).read()
if "find_package(spdlog" not in s:
    s = s.replace("find_package(Threads REQUIRED)", "find_package(Threads REQUIRED)\nfind_package(spdlog REQUIRED)")
    s = s.replace("libpcache.so)", "libpcache.so spdlog::spdlog)")
    open(p, "w").write(s)
PY
# build DIR [CMAKE_ARGS...]: configure and build, the compiler's output in DIR/build.log.
build() {
  local dir="$1"
  shift
  mkdir -p "$dir"
  (cd "$dir" && cmake "$@" .. >build.log 2>&1 && cmake --build . -j2 >>build.log 2>&1) ||
    { tail -n 30 "$dir/build.log" >&2; exit 1; }
}
build "$src/libs/libpcache/build"
build "$src/lazyfs/build" -DLAZYFS_BUILD_TESTS=OFF
echo "$src/lazyfs/build/lazyfs"
