#!/usr/bin/env bash
# Download the wheels that install edge-server (and its build backend) on CPython 3.11 for one
# Linux architecture, so a build or an install can run with `pip --no-index`, offline.
#   deploy/wheelhouse.sh DEST [aarch64|x86_64]      (default aarch64)
# The project's own dependencies (with the `mqtt` extra the image and the unit install) are
# resolved from pyproject.toml (pip reads the source tree),
# so this list never drifts from the package. tflite-runtime 2.14 for aarch64 exists only as
# manylinux_2_34, and pip does not expand that tag to older ones: every glibc level is listed.
set -euo pipefail
dest=$1
arch=${2:-aarch64}
src=$(cd "$(dirname "$0")/.." && pwd)
platforms=()
for v in $(seq 17 36); do platforms+=(--platform "manylinux_2_${v}_${arch}"); done
mkdir -p "$dest"
download() {
    python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        "${platforms[@]}" --platform "manylinux2014_${arch}" --platform "linux_${arch}" \
        --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
        -d "$dest" "$@" hatchling "${src}[mqtt]"
}
# A wheelhouse that already holds a full set is used as it is (a repeat run needs no index).
download --no-index --find-links "$dest" >/dev/null 2>&1 || download
echo "$dest: $(find "$dest" -name '*.whl' | wc -l) wheels for $arch"
