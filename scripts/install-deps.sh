#!/usr/bin/env bash
# Installs the Debian packages napilab's tests and benchmarks need, when they are missing.
# qemu-system-x86 + busybox-static: the kernel lab; sockperf: the peer benchmark (make bench-rr); chromium: the
# report page's browser test (internal/report), which opens the page headless and offline.
set -euo pipefail
pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || pkgs+=("$2"); }
need qemu-system-x86_64 qemu-system-x86
need busybox busybox-static
need sockperf sockperf
need chromium chromium
if [ "${#pkgs[@]}" -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing ${pkgs[*]}; run as root or: sudo apt-get install --no-install-recommends ${pkgs[*]}" >&2
	exit 1
fi
echo "install-deps: installing ${pkgs[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
