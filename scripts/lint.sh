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

# No binaries and nothing over 1 MB in the tree: a committed build product (a 6 MB ELF once sat at the root) bloats
# every clone for good. Checked are tracked files and untracked ones that .gitignore does not cover, so a stray
# `go build` output is caught before it is added. A file is binary when its first 8000 bytes hold a NUL byte, as
# git itself decides. binary_ok lists path globs of binary files that belong in the tree; keep it short and say
# why for each. Go fuzz corpora are text ("go test fuzz v1") and need no entry; a PNG golden of a plot would.
binary_ok=(
)
files=()
while IFS= read -r -d '' f; do
	[ -f "$f" ] && [ ! -L "$f" ] && files+=("$f") # skip files deleted in the work tree, and symlinks
done < <(git ls-files -z --cached --others --exclude-standard)
big=$(stat -c '%s %n' -- "${files[@]}" | awk -v max=$((1024 * 1024)) '$1 > max')
if [ -n "$big" ]; then
	echo "lint: files over the 1 MB limit (bytes, path): keep large files out of the tree:" >&2
	echo "$big" >&2
	fail=1
fi
while IFS= read -r f; do
	for g in "${binary_ok[@]}"; do
		# shellcheck disable=SC2053 # $g is a glob on purpose
		[[ $f == $g ]] && continue 2
	done
	kind=binary
	[ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] && kind="an ELF binary"
	echo "lint: $f is $kind: remove it (build products do not belong in git), or add it to binary_ok in $0" >&2
	fail=1
done < <(for f in "${files[@]}"; do head -c 8000 -- "$f" | LC_ALL=C grep -q -a -P '\x00' && echo "$f"; done)
exit $fail
