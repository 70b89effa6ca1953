# Build, test and package Multigres. `make help` lists the targets.

GO      ?= go
PKG     := github.com/multigres/proxy
# Package version: from git (see packaging/version.sh), or `make VERSION=...`.
ifeq ($(origin VERSION),undefined)
VERSION := $(shell packaging/version.sh)
endif
GOARCH  ?= $(shell $(GO) env GOARCH)
DIST    ?= dist
# The default config shipped as /etc/multigres/multigres.conf.
CONFIG  ?= etc/multigres.conf
BUILD   := build

# Reproducible: the same commit gives the same binary and packages. The commit
# time stamps every file in the packages (nfpm reads SOURCE_DATE_EPOCH).
ifeq ($(origin SOURCE_DATE_EPOCH),undefined)
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
endif
export SOURCE_DATE_EPOCH
NFPM     = VERSION='$(VERSION)' GOARCH='$(GOARCH)' MULTIGRES_CONFIG='$(CONFIG)' \
	   $(GO) tool nfpm package -f nfpm.yaml
LDFLAGS := -s -w -buildid= -X $(PKG)/daemon.Version=$(VERSION)

.PHONY: help build package test test-go test-examples test-clients test-package test-systemd test-diff-long check-units ci clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/multigres (static, reproducible)
	CGO_ENABLED=0 GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/multigres ./cmd/multigres

package: build $(BUILD)/multigres.1.gz $(BUILD)/changelog.gz ## build the .deb and .rpm into dist/
	@test -n '$(VERSION)' || { echo 'no VERSION' >&2; exit 1; }
	mkdir -p $(DIST)
	$(NFPM) -p deb -t $(DIST)/
	$(NFPM) -p rpm -t $(DIST)/

# gzip -n leaves out the name and time stamp, which would make builds differ.
$(BUILD)/%.gz: packaging/%
	@mkdir -p $(BUILD)
	gzip -9 -n -c $< > $@

test: test-go test-examples test-clients check-units test-package test-systemd ## run all tests (what .ci/run calls)

EXAMPLE := examples/drizzle-express

$(EXAMPLE)/node_modules: $(EXAMPLE)/package-lock.json
	cd $(EXAMPLE) && npm ci --no-audit --no-fund
	@touch $@

test-go: $(EXAMPLE)/node_modules ## Go tests with the race detector (node-postgres TLS test needs the example's modules)
	$(GO) test -race -count=1 -timeout 20m ./...
	# allocation counts need a build without the race detector
	$(GO) test -count=1 -run 'Allocat' ./wire/...

test-examples: build $(EXAMPLE)/node_modules ## the guide's Drizzle/Express code through Multigres
	cd $(EXAMPLE) && MULTIGRES_BIN=$(CURDIR)/bin/multigres npm test

# The driver matrix (tests/clients): every driver directly against
# PostgreSQL and through Multigres in both pool modes, outcomes compared.
CLIENTS := tests/clients

$(CLIENTS)/node/node_modules: $(CLIENTS)/node/package-lock.json
	cd $(CLIENTS)/node && npm ci --no-audit --no-fund
	@touch $@

test-clients: $(CLIENTS)/node/node_modules ## driver matrix: psycopg, asyncpg, JDBC, Rails, node, Go drivers in both pool modes
	MULTIGRES_CLIENTS=1 $(GO) test -count=1 -timeout 20m -v -run TestDrivers ./$(CLIENTS)/

test-package: ## build, inspect and install the packages in a throwaway root (needs root)
	packaging/test.sh

# The Debian root test-systemd boots, cached between runs (debootstrap takes
# minutes); `make clean` deletes it with the rest of $(BUILD).
SYSTEMD_ROOT ?= $(CURDIR)/$(BUILD)/_systemd-root

# The randomised differential protocol test for half an hour (make test runs
# it for about a minute as part of test-go).
test-diff-long: ## the randomised differential protocol test, 30 minutes
	MULTIGRES_DIFF_ALL=1 MULTIGRES_DIFF_DURATION=7m $(GO) test -race -count=1 -timeout 60m -v -run TestDifferential ./tests/differential/

test-systemd: ## boot the .deb under a real systemd (needs root; root cached in build/_systemd-root)
	MULTIGRES_SYSTEMD_ROOT='$(SYSTEMD_ROOT)' packaging/systemd-test.sh

check-units: build ## systemd-analyze verify + security score gate (<= 1.5)
	packaging/check-units.sh bin/multigres

ci: test ## what CI runs

clean: ## remove build outputs
	rm -rf bin $(BUILD) $(DIST)

# --- postgresql-15-multigres: the C seal carrier (pgext/) as its own package ---
PG_CONFIG   ?= /usr/lib/postgresql/15/bin/pg_config
PGEXT_STAGE := $(BUILD)/pgext
NFPM_PGEXT   = VERSION='$(VERSION)' GOARCH='$(GOARCH)' $(GO) tool nfpm package -f $(BUILD)/nfpm-pgext.yaml
.PHONY: package-pgext test-package-pgext

package-pgext: ## build postgresql-15-multigres (.deb and .rpm) into dist/ and check their file lists
	@test -n '$(VERSION)' || { echo 'no VERSION' >&2; exit 1; }
	$(MAKE) -C pgext PG_CONFIG='$(PG_CONFIG)' with_llvm=no
	mkdir -p $(PGEXT_STAGE) $(DIST)
	cp pgext/multigres.so pgext/multigres.control pgext/multigres--1.0.sql $(PGEXT_STAGE)/
	sed -e 's|@PGEXT_STAGE@|$(PGEXT_STAGE)|' -e "s|@PG_PKGLIBDIR@|$$('$(PG_CONFIG)' --pkglibdir)|" \
	    -e "s|@PG_SHAREDIR@|$$('$(PG_CONFIG)' --sharedir)|" packaging/nfpm-pgext.yaml > $(BUILD)/nfpm-pgext.yaml
	$(NFPM_PGEXT) -p deb -t $(DIST)/
	$(NFPM_PGEXT) -p rpm -t $(DIST)/
	packaging/check-pgext.sh $(DIST) '$(PG_CONFIG)'

test-package-pgext: package-pgext ## the extension package's contents (make test-package reaches it)

test-package: test-package-pgext
