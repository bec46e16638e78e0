#!/usr/bin/env bash
# The project's static checks: formatting, vet, staticcheck, and the import fences of CONTRIBUTING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
unformatted=$(gofmt -l $(git ls-files '*.go' ; git ls-files --others --exclude-standard '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
	echo "lint: gofmt would change:" $unformatted >&2
	fail=1
fi
go vet ./... || fail=1
go tool staticcheck ./... || fail=1
GOOS=darwin go build ./... || { echo "lint: the tree does not build for darwin (keep Linux code in _linux.go files)" >&2; fail=1; }

# unsafe lives only in *_unsafe.go files.
bad=$(grep -rl --include='*.go' '"unsafe"' internal cmd | grep -v '_unsafe\.go$' | grep -v '_test\.go$' || true)
if [ -n "$bad" ]; then
	echo "lint: unsafe imported outside *_unsafe.go files: $bad" >&2
	fail=1
fi
# Leaf packages never import upward.
for leaf in frame hist kernel version; do
	[ -d "internal/$leaf" ] || continue
	up=$(go list -f '{{join .Imports "\n"}}' "./internal/$leaf" | grep '^github.com/napilab/napilab/' | grep -v '/internal/kernel$' || true)
	if [ -n "$up" ]; then
		echo "lint: leaf package internal/$leaf imports $up" >&2
		fail=1
	fi
done
exit $fail
