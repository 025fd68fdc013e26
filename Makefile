# packets — the two commands a newcomer runs are `make demo` and `make test`.
GO       ?= go
BIN      := bin/packets
PKGS     := ./...
export CGO_ENABLED := 0
# -race binaries sleep 1 s at exit by default; tests start many processes.
GORACE   ?= atexit_sleep_ms=10
export GORACE

.PHONY: all build test e2e lint fmt vet demo bench bench-parts bench-commands fuzz netns soak ci clean

all: build

build: ## build bin/packets (pure Go, no cgo)
	$(GO) build -trimpath -o $(BIN) ./cmd/packets

test: ## the whole suite: unit tests with -race, the e2e scripts, then the LAN tests (root only; skipped otherwise)
	CGO_ENABLED=1 $(GO) test -race -timeout 15m $(PKGS)
	$(MAKE) --no-print-directory netns

e2e: ## only the end-to-end scripts (the real binary)
	$(GO) test -count=1 ./e2e/...

vet:
	$(GO) vet $(PKGS)

lint: vet ## go vet and staticcheck (pinned in go.mod as a tool)
	$(GO) tool staticcheck $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')

demo: build ## build the examples, index and sign them, serve them on loopback, apply examples/state.hcl into a throw-away root
	./scripts/demo.sh $(BIN)

bench: bench-parts bench-commands ## the whole benchmark suite: the parts, then whole commands beside pacman, dpkg and apt

bench-parts: ## Go benchmarks of the parts (go test -bench)
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 $(PKGS)

bench-commands: ## whole commands beside the floor, pacman, dpkg and apt, timed by hyperfine (root; writes bench/results.md)
	./bench/run.sh bench/results.md

fuzz: ## run every fuzz target for a bounded time each
	./scripts/fuzz.sh 20s

netns: ## LAN tests across real network namespaces (root only; they skip otherwise)
	CGO_ENABLED=1 $(GO) test -race -tags netns -count=1 -run 'Netns|LAN|ConcurrentCommands' ./peer ./e2e

soak: ## SIGKILL packets apply at 500 random moments, checking every invariant after each (make test runs 40)
	PACKETS_SOAK_KILLS=500 $(GO) test -count=1 -timeout 60m -run TestCrashSoak -v ./e2e

ci: lint test

clean:
	rm -rf bin
