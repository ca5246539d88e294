# Everything the project needs is built from here; see README.md.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/sportsintel/enrich/coordinator.Version=$(VERSION) -X github.com/sportsintel/enrich/agent.Version=$(VERSION)

.PHONY: all build proto proto-check lint vet test test-unit test-e2e run bench fuzz clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/enrich-coordinator ./coordinator/cmd/enrich-coordinator
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/enrich-agent ./agent/cmd/enrich-agent
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/enrichctl ./ctl/cmd/enrichctl

# Regenerates gen/ with buf and the plugins pinned in go.mod (no network needed).
proto:
	$(GO) tool buf lint
	$(GO) tool buf generate

# Fails when gen/ is not what the protos generate, or when buf lint fails.
proto-check:
	scripts/proto-check.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); echo "gofmt needed"; exit 1; }

lint: proto-check vet

# The whole suite: unit, store conformance, and end-to-end tests on the real binaries.
# Neo4j (scripts/neo4j.sh) and PostgreSQL (scripts/postgres.sh) are started once for the whole
# run, their addresses exported to go test, and stopped by the trap whatever the tests do. The
# PostgreSQL tests fail without their cluster; ENRICH_SKIP_POSTGRES=1 skips them instead.
test: build lint
	@scripts/neo4j.sh build
	@trap 'scripts/postgres.sh stop; scripts/neo4j.sh stop' EXIT INT TERM && \
		eval "$$(scripts/neo4j.sh start)" && \
		if [ "$$ENRICH_SKIP_POSTGRES" != 1 ]; then eval "$$(scripts/postgres.sh start)"; fi && \
		$(GO) test -race -count=1 -timeout 20m ./...

# The demo: coordinator + three agents + the 90-entity example, dossiers and a report.
run: build
	scripts/demo.sh

bench: build
	$(GO) run ./bench -entities 20000 -agents 4 -slots 256

# Scaling with agents: makespan against the ideal on 1, 3, 9 and 27 agents of 4 slots, the 90
# example entities with per-entity work drawn from the seed's ranges scaled down 1000x
# (bench/scaling, docs/benchmarks.md); a table from one run.
.PHONY: bench-agents
bench-agents: build
	$(GO) run ./bench/scaling -agents 1,3,9,27 -slots 4

# Consolidation into the real Neo4j: 10,000 dossiers batched against one transaction per dossier
# (BenchmarkGraph), a table from one run. Uses the server in NEO4J_URI, or starts a private one in
# its own state folder and stops it on exit, so a `make test` running meanwhile keeps its server.
.PHONY: bench-graph
bench-graph:
	@scripts/neo4j.sh build
	@run='$(GO) test -run ^$$ -bench ^BenchmarkGraph$$ -benchtime 1x -count 1 -timeout 30m ./coordinator/graph'; \
	if [ -n "$$NEO4J_URI" ]; then $$run; else \
		state=$$(mktemp -d) && trap 'NEO4J_STATE_DIR=$$state scripts/neo4j.sh stop; rm -rf $$state' EXIT INT TERM && \
		eval "$$(NEO4J_STATE_DIR=$$state scripts/neo4j.sh start)" && $$run; \
	fi

fuzz:
	scripts/fuzz.sh

clean:
	rm -rf $(BIN)
