# napilab — the two commands a fresh machine needs are `make demo` and `make test` (both as root).
GO ?= go
export PATH := $(PATH):/usr/local/go/bin
# Static executables everywhere (go build, go run, go test): napilab copies itself to the other end of a sweep,
# and a binary linked against this host's C library may not start there.
export CGO_ENABLED := 0

.PHONY: demo test deps lint unit lab-test lab-hang bench bench-rr build

## demo: bring up the veth testbed, compare the polling modes, print the table, tear everything down
demo:
	$(GO) run ./cmd/napilab demo

## test: lint, unit and privileged tests on the host, then the suites inside the qemu kernel lab
test: deps lint unit lab-test

## deps: install the Debian packages the tests need (qemu, busybox, sockperf, chromium) when missing
deps:
	./scripts/install-deps.sh

## lint: gofmt, go vet, staticcheck, darwin build, import fences
lint:
	./scripts/lint.sh

## unit: every Go test on the host (privileged ones need root; NAPILAB_REQUIRE_PRIV=1 forbids skipping them)
unit:
	$(GO) test -count=1 -timeout 20m ./...

## lab-test: every package's tests in one boot of a current Debian kernel under qemu, on veth and on two virtio NICs
## (threaded busy poll, zero copy, fentry); NAPILAB_REQUIRE_PRIV=1 holds inside; fails when any package fails.
## The guest holds ~300 MB of test binaries twice while its kernel unpacks them (1 GiB was no longer enough);
## scripts/ stay on the host (bench-rr's parsers need no kernel).
## LAB_FLAGS passes more flags to napilab lab test, e.g. LAB_FLAGS=--kernel=7.3.4 to pin the kernel.
LAB_FLAGS ?=
lab-test:
	@start=$$(date +%s); \
	$(GO) run ./cmd/napilab lab test --timeout 10m --pkg-timeout 4m --memory 2048 $(LAB_FLAGS) ./cmd/... ./internal/...; rc=$$?; \
	echo "lab-test: wall time $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

## lab-hang: reproduce the kernel hang that napilab guards against (threaded NAPI off under a zero-copy socket
## without need_wakeup) in a throwaway guest; passes when the guest watchdog catches the hung napi-set
lab-hang:
	NAPILAB_LAB_HANG=1 $(GO) test -count=1 -run '^TestLabHang$$' -v ./internal/labsuite

## bench: the Go micro-benchmarks (allocations and ns per operation of the hot paths)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-rr: napilab rr and the xsk_rr drop-in (AF_XDP) beside sockperf and netperf (UDP sockets), interleaved on
## one testbed, one table with p99.9 and the spread; BENCH_RR_FLAGS=--original=PATH adds a C xsk_rr you built
bench-rr: deps
	$(GO) run ./scripts/benchrr $(BENCH_RR_FLAGS)

## build: napilab and xsk_rr binaries in ./bin
build:
	$(GO) build -trimpath -o bin/ ./cmd/...
