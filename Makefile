# payd — two commands on a fresh machine:  make test   /   make demo
# Requires bash and Go; PostgreSQL and Redis binaries are installed from
# Debian packages by scripts/services.sh if missing (never uses the system
# services on 5432/6379: every run starts private instances).

SHELL := /bin/bash
# Go lives at /usr/local/go on our machines, not always on PATH.
export PATH := $(PATH):/usr/local/go/bin
GO    ?= go

# Extra arguments for `make test`, e.g. make test ARGS='./store/... -run TestX'
ARGS ?=

.PHONY: all build test demo services-up services-down services-env fmt vet clean

all: build

# payd (the server) and paydbench (the load driver and benchmark; it starts
# bin/payd with --spawn).
build:
	$(GO) build -o bin/payd ./cmd/payd
	$(GO) build -o bin/paydbench ./cmd/paydbench

test:
	bash scripts/test.sh $(ARGS)

demo:
	bash scripts/demo.sh

# Dev instances (name "dev"); then:  source "$$(scripts/services.sh env)"
services-up:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

services-env:
	@bash scripts/services.sh env

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
