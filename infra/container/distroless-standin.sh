#!/usr/bin/env bash
# Builds a local stand-in for gcr.io/distroless/cc-debian12:nonroot, for machines that cannot pull
# it (the test suite's, which reach Debian's package mirror but no container registry). It is made
# of the Debian 12 packages distroless's cc image is made of, as distroless lays them out:
#
#   libc6, libgcc-s1        the C runtime riposte links against (libc, libm, libgcc_s)
#   ca-certificates         the CA bundle rustls reads, /etc/ssl/certs/ca-certificates.crt
#   tzdata, netbase         /usr/share/zoneinfo, /etc/services and /etc/protocols
#   /etc/passwd, /etc/group root, nobody and nonroot (65532), with no login shell
#
# and nothing else: no shell, no package manager, no coreutils. Packages are unpacked, not
# installed (no maintainer script runs, there being no shell to run them); the one thing a script
# would have made, the CA bundle, is assembled here as update-ca-certificates does.
#
#   infra/container/distroless-standin.sh [TAG]   # default: localhost/riposte/distroless-standin:debian12
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tag="${1:-localhost/riposte/distroless-standin:debian12}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs"

packages=(libc6 libgcc-s1 ca-certificates tzdata netbase)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/riposte/debs"
mkdir -p "$cache"
if ! (cd "$cache" && apt-get download "${packages[@]}" >/dev/null 2>&1); then
  # A fresh machine may have no package lists yet.
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  (cd "$cache" && apt-get download "${packages[@]}" >/dev/null)
fi
for package in "${packages[@]}"; do
  # The newest download of each package (the cache may hold older versions).
  deb="$(ls -t "$cache/${package}"_*.deb | head -n1)"
  dpkg-deb --extract "$deb" "$rootfs"
done

mkdir -p "$rootfs/etc/ssl/certs"
find "$rootfs/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort | xargs awk 1 \
  >"$rootfs/etc/ssl/certs/ca-certificates.crt"

cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
GROUP
mkdir -p "$rootfs/root" "$rootfs/tmp" "$work/home/nonroot"
chmod 0700 "$rootfs/root" "$work/home/nonroot"
chmod 1777 "$rootfs/tmp"

cat >"$work/Containerfile" <<'CONTAINERFILE'
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 home/ /home/
# As distroless sets them.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532
WORKDIR /home/nonroot
CONTAINERFILE

podman build --quiet --tag "$tag" "$work" >/dev/null
echo "$tag"
