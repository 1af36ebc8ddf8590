# imgcap: `make demo` runs the main job, `make test` runs every check. Both set up what is missing.
GO       ?= go
STAMP    := build/gotch/.imgcap-stamp
BIN      := bin/imgcap
export GOFLAGS := -buildvcs=false

.PHONY: setup build test demo fuzz bench clean

setup:
	@./scripts/setup.sh

$(STAMP):
	@./scripts/setup.sh

build: $(STAMP)
	$(GO) build -o $(BIN) ./cmd/imgcap

test: setup
	@echo "== gofmt"; out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './build/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@echo "== go vet"; $(GO) vet ./...
	@echo "== fuzz (brief)"; ./scripts/fuzz.sh
	@echo "== browser test deps"; ./scripts/browser-test-deps.sh
	@echo "== go test"; $(GO) test -count=1 -timeout 60m ./...

demo: setup build
	./scripts/demo.sh

fuzz: setup
	FUZZTIME=$${FUZZTIME:-200000x} ./scripts/fuzz.sh

bench: setup
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

clean:
	rm -rf build bin
