# pam-vrf build and test entry points. `make test` is the README's test
# command and what .ci/run calls: host unit + integration tests, then the VM
# end-to-end scenario.

GO      ?= go
BUILD   ?= build
GOFLAGS ?= -trimpath
# The Go part is loaded into sshd: strip it, and give it its own soname.
CORE_LDFLAGS = -s -w -extldflags=-Wl,-soname,pam_vrf_core.so

GO_SOURCES := $(shell find . -name '*.go' -not -path './tests/vm/cache/*') go.mod go.sum
CFLAGS  ?= -O2
# The module proper is C (cgo/module/pam_vrf.c); it loads its Go part,
# pam_vrf/core.so beside it, only inside open_session.
# -fno-plt: calls into libpam and libc go through the GOT instead of PLT
# stubs on a page of their own, one page fewer for every fresh process that
# runs the module (see PAMVRF_APART in cgo/module/fastpath.h).
MODULE_CFLAGS = $(CFLAGS) -fPIC -fno-plt -Wall -Wextra -Werror
# -z noseparate-code: two load segments instead of four. Every process that
# loads a PAM stack naming pam_vrf.so maps it (sshd for each connection, also
# for logins the module leaves alone), and two fewer mappings are a tenth of
# what the module costs such a login (make bench, "not placed"). The price:
# its ELF headers and 2 KiB of read-only data are mapped executable, as every
# library's were before binutils 2.31; RELRO is unchanged.
MODULE_LDFLAGS = $(LDFLAGS) -shared -Wl,-soname,pam_vrf.so -Wl,-z,defs -Wl,-z,noseparate-code

.PHONY: all deps test test-host e2e e2e-fleet e2e-faults soak demo bench bench-vm vet fuzz deb clean

all: $(BUILD)/pam_vrf.so $(BUILD)/pam_vrf/core.so $(BUILD)/vrf-netsetup $(BUILD)/pamdriver

deps:
	@scripts/install-deps.sh build test

# Everything but the pam_sm_* entry points and pamvrf_fastpath is static.
$(BUILD)/pam_vrf.so: cgo/module/pam_vrf.c cgo/module/fastpath.c cgo/module/fastpath.h cgo/module/nssgroups.c cgo/module/nssgroups.h cgo/module/sys.h
	@mkdir -p $(@D)
	$(CC) $(MODULE_CFLAGS) $(CPPFLAGS) -o $@ cgo/module/pam_vrf.c cgo/module/fastpath.c cgo/module/nssgroups.c $(MODULE_LDFLAGS) -lpam -ldl

$(BUILD)/pam_vrf/core.so: $(GO_SOURCES) cgo/shim.c cgo/shim.h
	@mkdir -p $(@D)
	CGO_ENABLED=1 $(GO) build $(GOFLAGS) -buildmode=c-shared -ldflags='$(CORE_LDFLAGS)' -o $@ ./cgo
	@rm -f $(@D)/core.h

# Host-test variant: accepts a veth device in place of a VRF (no VRF driver
# on the CI kernel), in C and in Go. Never installed.
$(BUILD)/test/pam_vrf.so: cgo/module/pam_vrf.c cgo/module/fastpath.c cgo/module/fastpath.h cgo/module/nssgroups.c cgo/module/nssgroups.h cgo/module/sys.h
	@mkdir -p $(@D)
	$(CC) $(MODULE_CFLAGS) -DPAMVRF_ANYDEVICE $(CPPFLAGS) -o $@ cgo/module/pam_vrf.c cgo/module/fastpath.c cgo/module/nssgroups.c $(MODULE_LDFLAGS) -lpam -ldl

$(BUILD)/test/pam_vrf/core.so: $(GO_SOURCES) cgo/shim.c cgo/shim.h
	@mkdir -p $(@D)
	CGO_ENABLED=1 $(GO) build $(GOFLAGS) -tags pamvrf_anydevice -buildmode=c-shared -ldflags='$(CORE_LDFLAGS)' -o $@ ./cgo
	@rm -f $(@D)/core.h

TEST_MODULE = $(BUILD)/test/pam_vrf.so $(BUILD)/test/pam_vrf/core.so

# make bench: the test module with per-step timing in the C fast path.
$(BUILD)/bench/pam_vrf.so: cgo/module/pam_vrf.c cgo/module/fastpath.c cgo/module/fastpath.h cgo/module/nssgroups.c cgo/module/nssgroups.h cgo/module/sys.h
	@mkdir -p $(@D)
	$(CC) $(MODULE_CFLAGS) -DPAMVRF_ANYDEVICE -DPAMVRF_TRACE $(CPPFLAGS) -o $@ cgo/module/pam_vrf.c cgo/module/fastpath.c cgo/module/nssgroups.c $(MODULE_LDFLAGS) -lpam -ldl

$(BUILD)/bench/pam_vrf/core.so: $(BUILD)/test/pam_vrf/core.so
	@mkdir -p $(@D)
	cp $< $@

BENCH_MODULE = $(BUILD)/bench/pam_vrf.so $(BUILD)/bench/pam_vrf/core.so

$(BUILD)/vrf-netsetup: $(GO_SOURCES)
	@mkdir -p $(BUILD)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -ldflags='-s -w' -o $@ ./cmd/vrf-netsetup

$(BUILD)/pamdriver: tests/pamdriver/pamdriver.c
	@mkdir -p $(BUILD)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $< -lpam

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# Host tests need root (cgroups, BPF, network namespaces).
test-host: deps all $(TEST_MODULE) vet
	PAMVRF_BUILD=$(abspath $(BUILD)) $(GO) test -count=1 ./...
	# vrf-netsetup is static: its NSS path (getent) is tested without cgo too.
	CGO_ENABLED=0 $(GO) test -count=1 ./nss

# The guest gets pam-vrf from the Debian packages, as an admin would.
# Guests run PAMVRF_GUESTS (2) at a time, longest test first
# (tests/e2e/slots.go); -parallel only has to be larger than that.
# scripts/e2e-run.sh runs go test, and once more the tests that failed only
# because the emulator panicked their guest's kernel.
# The Ansible role's two tests (TestE2EFleet, TestE2EFleetTry: 15 to 18
# minutes of guest time, ansible-playbook under TCG) run in make e2e-fleet,
# so that make test stays inside its 45 minutes on this 2-core machine.
e2e: all deb
	@scripts/install-deps.sh vm
	PAMVRF_SOAK=$(SOAK) PAMVRF_BUILD=$(abspath $(BUILD)) PAMVRF_DEBS=$(abspath dist) GO=$(GO) scripts/e2e-run.sh -timeout 80m -parallel 32 -run 'TestE2E' -skip 'TestE2EFleet'

# The Ansible role (contrib/ansible): locally, and over ssh with try/confirm.
e2e-fleet: all deb
	@scripts/install-deps.sh vm
	PAMVRF_BUILD=$(abspath $(BUILD)) PAMVRF_DEBS=$(abspath dist) GO=$(GO) scripts/e2e-run.sh -timeout 60m -parallel 32 -run 'TestE2EFleet'

# Issue 16's matrix in full: on each host shape (networkd, ifupdown +
# dhclient, ifupdown static, ifupdown + dhcpcd, NetworkManager) every step of apply's plan
# fails in turn and must roll back to the pre-apply host; make e2e fails a
# few steps of each kind.
e2e-faults: all deb
	@scripts/install-deps.sh vm
	PAMVRF_FAULT_STEPS=all PAMVRF_SOAK=1 PAMVRF_BUILD=$(abspath $(BUILD)) PAMVRF_DEBS=$(abspath dist) GO=$(GO) scripts/e2e-run.sh -timeout 300m -parallel 32 -run 'TestE2E(Netsetup|Ifupdown|IfupdownStatic|Dhcpcd|NetworkManager|TrixieNetplan|SSHDVRFOnly|IPv6Only|OtherVRF)$$'

# make e2e logs in SOAK times in a row (40); `make soak` runs the main
# scenario with the long soak: LONG_SOAK (500) logins through sshd.
SOAK ?= 40
LONG_SOAK ?= 500
soak: all deb
	@scripts/install-deps.sh vm
	PAMVRF_SOAK=$(LONG_SOAK) PAMVRF_BUILD=$(abspath $(BUILD)) PAMVRF_DEBS=$(abspath dist) $(GO) test -count=1 -tags vm -timeout 60m -v -run 'TestE2E$$' ./tests/e2e/

test: test-host e2e

demo: all deb
	@scripts/install-deps.sh vm
	$(GO) run -tags vm ./tests/e2e/demo -build $(abspath $(BUILD)) -debs $(abspath dist)

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./config

# Prints one table (figures next to their same-run baselines); fails only on
# functional errors. -benchtime Nx = latency samples per warm scenario.
bench: all $(TEST_MODULE) $(BENCH_MODULE)
	PAMVRF_BUILD=$(abspath $(BUILD)) $(GO) test -count=1 -timeout 30m -run '^$$' -bench . -benchtime 2000x ./tests/bench/

# vrf-netsetup apply (converged, read-only no-op) and check, in the VM guest.
bench-vm: all $(TEST_MODULE)
	@scripts/install-deps.sh vm
	PAMVRF_BUILD=$(abspath $(BUILD)) $(GO) test -count=1 -tags vm -timeout 30m -run '^$$' -bench VMNetsetup -benchtime 1x ./tests/bench/

# Debian packages into dist/ (lintian's verdict in dist/lintian.txt).
deb:
	scripts/build-deb.sh

clean:
	rm -rf $(BUILD) dist
