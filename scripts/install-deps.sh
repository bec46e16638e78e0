#!/usr/bin/env bash
# Installs the Debian packages napilab's tests and benchmarks need, when they are missing.
# qemu-system-x86 + busybox-static: the kernel lab; sockperf: the peer benchmark (make bench-rr); chromium: the
# report page's browser test (internal/report), which opens the page headless and offline; openssh-server: the
# sshd that the two-host tests start on 127.0.0.1 with a config of their own (the system's ssh service is
# neither started nor enabled: tests never use the machine's own sshd).
set -euo pipefail
pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || pkgs+=("$2"); }
need qemu-system-x86_64 qemu-system-x86
need busybox busybox-static
need sockperf sockperf
need chromium chromium
[ -x /usr/sbin/sshd ] || pkgs+=(openssh-server)
if [ "${#pkgs[@]}" -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing ${pkgs[*]}; run as root or: sudo apt-get install --no-install-recommends ${pkgs[*]}" >&2
	exit 1
fi
echo "install-deps: installing ${pkgs[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# invoke-rc.d asks policy-rc.d whether a maintainer script may start a service; 101 means "no". Only a file this
# script created is removed again (containers often ship one of their own).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
# The package enables its service for the next boot; only the tests' own sshd is wanted here.
if [[ " ${pkgs[*]} " == *" openssh-server "* ]]; then
	{ systemctl disable ssh.service ssh.socket && update-rc.d ssh disable; } >/dev/null 2>&1 ||
		echo "install-deps: could not disable the ssh service for the next boot (the tests never use it)" >&2
fi
