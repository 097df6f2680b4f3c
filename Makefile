# rotor — everyday commands. `make demo` and `make test` are the two
# set-up commands the README promises work on a fresh machine with Go.

GO      ?= go
PKGS    ?= ./...
NODEDIR := internal/target/dotenv/testdata/node

.PHONY: all build demo test testdeps vet fuzz bench soak clean

all: build

build:
	$(GO) build -o bin/rotor ./cmd/rotor

## demo: rotate a throwaway local PostgreSQL under load (needs PostgreSQL's server binaries)
demo:
	$(GO) run ./cmd/rotor demo

## testdeps: Node's dotenv, used to prove .env files read back the same in Node
testdeps:
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(NODEDIR) --silent --no-audit --no-fund; \
	else \
		echo "npm not found: the Node dotenv compatibility test will skip (CI installs nodejs)"; \
	fi

vet:
	$(GO) vet $(PKGS)

## test: vet, then every test with the race detector against real PostgreSQL
test: testdeps vet
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

## fuzz: run each fuzz target for FUZZTIME (default 20s)
FUZZTIME ?= 20s
fuzz:
	@set -e; for spec in \
		./internal/connstr:FuzzRoundTrip ./internal/connstr:FuzzParse ./internal/connstr:FuzzRedact \
		./internal/target/dotenv:FuzzEdit ./internal/target/dotenv:FuzzScan \
		./internal/config:FuzzParse ./internal/template:FuzzCompile ; do \
		pkg=$${spec%%:*}; fn=$${spec##*:}; \
		echo "== $$fn ($$pkg)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

## bench: the load scenario table, then the benchmarks (rotations per second,
## start-up time, memory); docs/benchmarks.md records the figures
ROTATIONS ?= 20
bench:
	$(GO) run ./cmd/rotor-bench -rotations $(ROTATIONS)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./internal/bench/

## soak: the SIGKILL crash matrix with many random kill points
SOAK_KILLS ?= 200
soak:
	ROTOR_SOAK_KILLS=$(SOAK_KILLS) $(GO) test -count=1 -timeout 60m -run Crash -v ./internal/cli/e2e/

clean:
	rm -rf bin
