#!/usr/bin/env bash
# Builds a stand-in for the AWS Lambda Python 3.11 base image, tagged as SAM CLI expects
# (public.ecr.aws/lambda/python:3.11-<arch>), for `sam local` where no container registry is reachable:
# a Debian bookworm root file system (debootstrap, minbase + python3.11) with the Runtime Interface Client
# (awslambdaric) in /var/runtime and the AWS layout. Does nothing when the tag exists (FORCE=1 rebuilds).
#   usage: build.sh [x86_64|arm64]      env: PIP (pip of a Python 3.11), DEBIAN_MIRROR
set -euo pipefail
arch=${1:-x86_64}
case "$arch" in
  x86_64) deb_arch=amd64 wheel_platform=manylinux2014_x86_64 ;;
  arm64) deb_arch=arm64 wheel_platform=manylinux2014_aarch64 ;;
  *) echo "build.sh: unknown architecture '$arch' (use x86_64 or arm64)" >&2; exit 2 ;;
esac
host_arch=$(dpkg --print-architecture)
if [ "$deb_arch" != "$host_arch" ]; then
  echo "build.sh: cannot build the $arch image on a $host_arch host; build it on $arch, or invoke with" \
    "--parameter-overrides Architecture=$( [ "$host_arch" = amd64 ] && echo x86_64 || echo arm64 )" >&2
  exit 2
fi
tag="public.ecr.aws/lambda/python:3.11-$arch"
if [ -z "${FORCE:-}" ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag: present"
  exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
pip=${PIP:-python3.11 -m pip}
# The machine's own Debian mirror (deb822 sources first, then the one-line format).
mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(\S*debian\)\/*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)}
mirror=${mirror:-$(sed -n 's/^deb \(\S*debian\)\/* bookworm .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
start=$(date +%s)

echo "== debootstrap bookworm ($deb_arch) from $mirror"
debootstrap --variant=minbase --arch="$deb_arch" --include=python3.11 bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/{doc,man,info,locale}

echo "== Lambda layout"
mkdir -p "$rootfs"/var/{task,runtime,lang/bin} "$rootfs"/opt/{python,lib,bin} "$rootfs"/usr/local/bin
ln -s /usr/bin/python3.11 "$rootfs/var/lang/bin/python3.11"
ln -s python3.11 "$rootfs/var/lang/bin/python3"
ln -s python3.11 "$rootfs/var/lang/bin/python"
$pip install -q --disable-pip-version-check --no-compile --target "$rootfs/var/runtime" \
  --only-binary=:all: --platform "$wheel_platform" --python-version 3.11 --implementation cp \
  -r "$here/runtime-requirements.txt"
install -m 0755 "$here/bootstrap" "$rootfs/var/runtime/bootstrap"
install -m 0755 "$here/lambda-entrypoint.sh" "$rootfs/lambda-entrypoint.sh"

echo "== docker build $tag"
tar -C "$rootfs" -cf "$work/rootfs.tar" .
cp "$here/Dockerfile" "$work/Dockerfile"
docker build -q -t "$tag" -f "$work/Dockerfile" "$work" >/dev/null
echo "$tag: built in $(( $(date +%s) - start ))s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}'))"
