#!/usr/bin/env bash
# Captures the sample data-roots shipped in snapshots/ from a real dockerd.
# Needs root, docker.io (dockerd + client), gcc; fuse-overlayfs and btrfs-progs for those samples.
# Run from the repository: bash scripts/capture-samples.sh [SAMPLE...]
# (SAMPLE: after-build, after-build-vfs, after-build-overlay, after-build-fuse-overlayfs,
# after-build-btrfs, after-logs; default: all of them, and fresh with after-build).
# What each step does is written, step by step, in snapshots/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/snapshots"
work=$(mktemp -d /tmp/dataroot-capture-XXXXXX)
pid_of() { cat "$1/pid" 2>/dev/null || true; }

start() { # start DIR DRIVER
  mkdir -p "$1/root" "$1/exec"
  if [ "$2" = btrfs ] && ! grep -q " $1/root btrfs " /proc/self/mounts; then
    # btrfs: the data-root is a btrfs file system in a loop-mounted image file.
    [ -f "$1/btrfs.img" ] || { truncate -s 1G "$1/btrfs.img"; mkfs.btrfs -q "$1/btrfs.img"; }
    mount -o loop "$1/btrfs.img" "$1/root"
  fi
  dockerd --data-root "$1/root" --exec-root "$1/exec" --pidfile "$1/pid" -H "unix://$1/sock" \
    --storage-driver "$2" --iptables=false --ip6tables=false --bridge=none >>"$1/dockerd.log" 2>&1 &
  for _ in $(seq 1 150); do
    DOCKER_HOST="unix://$1/sock" docker version >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "dockerd did not start:"; tail -20 "$1/dockerd.log"; exit 1
}
stop() { # stop DIR
  local p; p=$(pid_of "$1")
  [ -n "$p" ] || return 0
  kill "$p"
  while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
  grep -o " $1/[^ ]*" /proc/self/mounts | grep -v " $1/root$" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}
archive() { # archive DIR NAME
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$1/root" -cf - . | gzip -9n > "$out/$2.tar.gz"
  echo "wrote snapshots/$2.tar.gz ($(stat -c %s "$out/$2.tar.gz") bytes)"
}
cleanup() {
  for d in "$work"/*/; do
    stop "${d%/}" || true
    grep -q " ${d%/}/root " /proc/self/mounts && umount "${d%/}/root" || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The tiny static binary the image carries.
ctx="$work/context"
mkdir -p "$ctx"
gcc -nostdlib -static -s -Wl,--build-id=none -Wl,-n -o "$ctx/hello" "$here/test/fixtures/hello/hello.S"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
LABEL org.example.sample="after-build"
ENV GREETING=hello
COPY hello /hello
ENTRYPOINT ["/hello"]
DOCKERFILE

capture() { # capture DRIVER NAME-SUFFIX
  local d="$work/$1"
  start "$d" "$1"
  stop "$d"
  if [ "$1" = overlay2 ]; then archive "$d" fresh; fi
  start "$d" "$1"
  export DOCKER_HOST="unix://$d/sock"
  DOCKER_BUILDKIT=0 docker build -q -t localhost/buildtest:v1 "$ctx"
  docker volume create samplevol >/dev/null
  docker network create --driver bridge --subnet 172.30.0.0/24 samplenet >/dev/null
  docker run --name sample -v samplevol:/data --network samplenet localhost/buildtest:v1
  unset DOCKER_HOST
  stop "$d"
  archive "$d" "after-build$2"
}

# after-logs: containers that log through json-file (rotated, compressed), local and syslog (whose
# dual-logging cache dockerd keeps), with stdout and stderr, unicode, a line longer than 16 KiB and
# output without a final newline; a file planted in a read-write layer and one in a volume.
capture_logs() {
  local d="$work/logs"
  mkdir -p "$work/say"
  gcc -nostdlib -static -s -Wl,--build-id=none -Wl,-n -o "$work/say/say" "$here/test/fixtures/say/say.S"
  printf 'FROM scratch\nCOPY say /say\nENTRYPOINT ["/say"]\n' > "$work/say/Dockerfile"
  start "$d" overlay2
  export DOCKER_HOST="unix://$d/sock"
  DOCKER_BUILDKIT=0 docker build -q -t localhost/say:v1 "$work/say" >/dev/null
  docker volume create logvol >/dev/null
  local args=()
  for i in $(seq 1 12); do
    args+=("1line $i: héllo wörld ✓"$'\n' "2warning $i"$'\n')
    [ "$i" = 6 ] && args+=(s)
  done
  args+=("1$(head -c 17000 /dev/zero | tr '\0' x)"$'\n' "1the end, no newline")
  docker run --name jsonlog --label org.example.team=forensics -v logvol:/data \
    --log-driver json-file --log-opt max-size=1k --log-opt max-file=3 --log-opt compress=true \
    --log-opt labels=org.example.team localhost/say:v1 "${args[@]}" >/dev/null 2>&1
  docker run --name locallog --log-driver local --log-opt max-size=1k --log-opt max-file=3 \
    localhost/say:v1 "${args[@]}" >/dev/null 2>&1
  docker run --name cachedlog --log-driver syslog --log-opt syslog-address=udp://127.0.0.1:5514 \
    localhost/say:v1 "1sent to syslog, kept in the cache"$'\n' "2and on stderr"$'\n' >/dev/null 2>&1
  printf 'planted in the read-write layer\n' > "$work/say/planted.txt"
  printf 'planted in the volume\n' > "$work/say/evidence.txt"
  docker cp "$work/say/planted.txt" jsonlog:/planted.txt
  docker cp "$work/say/evidence.txt" jsonlog:/data/evidence.txt
  unset DOCKER_HOST
  stop "$d"
  archive "$d" after-logs
}

all=("$@")
for spec in "overlay2:" "vfs:-vfs" "overlay:-overlay" "fuse-overlayfs:-fuse-overlayfs" "btrfs:-btrfs"; do
  driver=${spec%%:*}
  suffix=${spec#*:}
  if [ ${#all[@]} -eq 0 ] || [[ " ${all[*]} " == *" after-build$suffix "* ]]; then capture "$driver" "$suffix"; fi
done
if [ ${#all[@]} -eq 0 ] || [[ " ${all[*]} " == *" after-logs "* ]]; then capture_logs; fi
