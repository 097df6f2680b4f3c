# rotor — everyday commands. `make demo` and `make test` are the two
# set-up commands the README promises work on a fresh machine with Go:
# both first run scripts/deps.sh, which installs what is missing (as root
# with apt-get) or stops with the command to run.

GO      ?= go
PKGS    ?= ./...

.PHONY: all build deps demo test test-quick large-files vet fuzz bench soak image clean

all: build

## build: the release build: static (CGO_ENABLED=0: no libc or dynamic
## loader mapped at start, as in the image), -trimpath (no local paths in
## the binary) and -s -w (no symbol table or DWARF: about a third of the
## size; panics still print their stack traces). docs/benchmarks.md has
## the sizes.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/rotor ./cmd/rotor

## deps: install what the tests need and is missing (PostgreSQL server, PgBouncer,
## Node.js + npm and the pinned dotenv, a C compiler for -race, a PostgreSQL 17
## for the login-trigger tests, and Chromium for the console's browser tests)
deps:
	scripts/deps.sh --pg17 --browser

## demo: rotate a throwaway local PostgreSQL under load
demo:
	scripts/deps.sh postgresql
	$(GO) run ./cmd/rotor demo

## large-files: fail when a file over 5 MB is tracked by git
large-files:
	scripts/large-files.sh

vet:
	$(GO) vet $(PKGS)

## test: every test with the race detector against real PostgreSQL, PgBouncer
## and Node; a test that would skip for a missing dependency fails instead
test: deps large-files vet
	ROTOR_TEST_DEPS=require $(GO) test -race -count=1 -timeout 25m $(PKGS)

## test-quick: only the tests that need nothing installed (no PostgreSQL,
## PgBouncer or Node; those skip), without the race detector; installs nothing
test-quick: large-files vet
	ROTOR_TEST_DEPS=skip $(GO) test -count=1 -timeout 10m $(PKGS)

## fuzz: run each fuzz target for FUZZTIME (default 20s)
FUZZTIME ?= 20s
fuzz:
	@set -e; for spec in \
		./internal/connstr:FuzzRoundTrip ./internal/connstr:FuzzParse ./internal/connstr:FuzzRedact \
		./internal/target/dotenv:FuzzEdit ./internal/target/dotenv:FuzzScan \
		./internal/config:FuzzParse ./internal/template:FuzzCompile ./internal/template:FuzzExecute ; do \
		pkg=$${spec%%:*}; fn=$${spec##*:}; \
		echo "== $$fn ($$pkg)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

## bench: the load scenario table, then the benchmarks (rotations per second,
## start-up time, memory, the store's and the server's CPU per rotation);
## docs/benchmarks.md records the figures
ROTATIONS ?= 20
bench:
	$(GO) run ./cmd/rotor-bench -rotations $(ROTATIONS)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./internal/bench/
	$(GO) test -run '^$$' -bench 'EngineJournal|ServerCPU' -benchtime 1000x ./internal/store/sqlite/ ./internal/provider/postgres/

## soak: the SIGKILL crash matrix with many random kill points, on both state
## stores (SQLite and PostgreSQL; SOAK_STORES=sqlite or =postgres runs one),
## and the rotor serve HA test (3 replicas, SOAK_SERVE_CREDS credentials,
## SOAK_SERVE_KILLS SIGKILLs)
SOAK_KILLS ?= 200
SOAK_STORES ?= sqlite,postgres
SOAK_SERVE_KILLS ?= 100
SOAK_SERVE_CREDS ?= 50
soak:
	ROTOR_SOAK_KILLS=$(SOAK_KILLS) ROTOR_SOAK_STORES=$(SOAK_STORES) \
	ROTOR_SOAK_SERVE_KILLS=$(SOAK_SERVE_KILLS) ROTOR_SOAK_SERVE_CREDS=$(SOAK_SERVE_CREDS) \
		$(GO) test -count=1 -timeout 90m -run 'Crash|ServeHA' -v ./internal/cli/e2e/

clean:
	rm -rf bin

## image: the container image as an OCI image layout in bin/image, without a
## daemon (static binary, non-root user, no shell; see docs/deploy.md). Load
## it with `skopeo copy oci:bin/image:rotor:dev docker-daemon:rotor:dev`
IMAGE_REF ?= rotor:dev
image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/rotor-linux ./cmd/rotor
	$(GO) run ./cmd/rotor-image -binary bin/rotor-linux -out bin/image -ref $(IMAGE_REF) \
		-revision "$$(git rev-parse --short HEAD 2>/dev/null)"

## console-screenshots: re-take the web console's screenshots in
## docs/console/*.png (shown in docs/console.md) from the browser tests,
## in real Chromium; plain test runs never write them
console-screenshots:
	ROTOR_CONSOLE_SCREENSHOTS=1 $(GO) test -count=1 -run '^TestBrowser$$' -v ./internal/serve/console/
