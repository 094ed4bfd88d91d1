#!/usr/bin/env bash
# Captures snapshots/containerd.tar.gz and snapshots/docker-containerd.tar.gz with a private
# containerd (see snapshots/README.md). Needs root, containerd + ctr + runc, gcc, and npm ci done.
# Run from the repository: bash scripts/capture-containerd-samples.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for t in containerd ctr runc gcc; do command -v "$t" >/dev/null || { echo "needs $t"; exit 1; }; done
[ "$(id -u)" = 0 ] || { echo "needs root (containerd, overlay mounts)"; exit 1; }
exec npx vite-node scripts/capture-containerd-samples.ts
