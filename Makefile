# reelfeed — `make run` starts the service on embedded defaults,
# `make test` runs every test.

GO        ?= go
BIN       := bin/reelfeed
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X reelfeed/app.Version=$(VERSION)
PKGS      := ./...
# Each package's tests get this long; the whole suite stays well under 5 minutes.
TEST_TIMEOUT ?= 240s

.PHONY: run build test test-race bench lint fmt demo clean

run: ## start the service on embedded defaults (no Redis, NATS or Elasticsearch needed)
	$(GO) run -ldflags "$(LDFLAGS)" . serve

build: ## build bin/reelfeed
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

test: ## run every test (integration tests use Redis/NATS on localhost; CI=true makes them fail instead of skip)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

test-race: ## every test under the race detector
	$(GO) test -race -count=1 -timeout 600s $(PKGS)

bench: build ## Go benchmarks of the hot paths plus the end-to-end bench commands, with a summary
	bash scripts/bench.sh

lint: ## go vet + gofmt check
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

demo: build ## a live, personalised feed within a minute: server + simulated world + gentle traffic
	bash scripts/demo.sh

clean:
	rm -rf bin data
