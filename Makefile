# sprig: the two commands of the README. Each installs the Debian packages that are
# missing (apt-get update only when something is), configures, builds, and runs.
BUILD      ?= build
BUILD_SAN  ?= build-san
CMAKE_FLAGS ?=
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
SUDO       := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# Build: compiler, cmake, libraries. Tests: the real peers (broker, Modbus, serial ptys,
# PostgreSQL 15 and a NATS cluster for the fleet) and a headless browser for the web UI
# (Chromium driven by chromedriver through Selenium).
PACKAGES = gcc make cmake pkg-config git python3 sqlite3 \
	liblua5.4-dev libmodbus-dev libmosquitto-dev libsqlite3-dev libuv1-dev \
	libxxhash-dev libcjson-dev libcmocka-dev libpq-dev \
	libcurl4-openssl-dev libmicrohttpd-dev curl \
	mosquitto mosquitto-clients python3-pymodbus mbpoll socat \
	postgresql-15 postgresql-client-15 nats-server \
	chromium chromium-driver python3-selenium

.PHONY: deps build demo check check-unit check-sanitizers bench bench-api bench-rules bench-modbus bench-sync bench-fleet footprint screenshots clean

deps:
	@missing=""; \
	for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

# The demo gateway: simulated devices stream points into sprig-demo.db until Ctrl-C.
# A second run continues from the same database.
demo: build
	./$(BUILD)/sprig run --db sprig-demo.db --demo

# Every test: unit tests (one cmocka program per module) and integration tests.
check: build
	ctest --test-dir $(BUILD) --output-on-failure

# Every test again, the unit tests and the daemon under AddressSanitizer and
# UndefinedBehaviorSanitizer.
check-sanitizers: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DSPRIG_ASAN=ON -DSPRIG_UBSAN=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_SAN) -j$(JOBS)
	ctest --test-dir $(BUILD_SAN) --output-on-failure

# Benchmarks (figures, not tests): see the README's performance section.
bench: build
	./$(BUILD)/bench_write

# Sync over MQTT: a 10,000-node first sync, repair bytes, live and backlog forwarding.
bench-sync: build
	/usr/bin/python3 tests/bench/bench_sync.py ./$(BUILD)/sprig ./$(BUILD)/bench_mqtt

# The fleet side (DESIGN.md section 11) on a throwaway PostgreSQL: its store against a raw
# batched upsert of the same rows; then FLEET_GATEWAYS gateway processes through one upstream
# on PostgreSQL against one on SQLite (points/s, the upstream's memory per device).
FLEET_GATEWAYS ?= 8
bench-fleet: build
	/usr/bin/python3 tests/integration/pg.py --run -- ./$(BUILD)/bench_store_pg
	/usr/bin/python3 tests/bench/bench_fleet.py ./$(BUILD)/sprig --gateways $(FLEET_GATEWAYS)

bench-modbus: build
	./$(BUILD)/bench_modbus

bench-rules: build
	./$(BUILD)/bench_rules

# The HTTP API's write rate against the core write path, and SSE latency (README, "Performance").
bench-api: build
	/usr/bin/python3 tests/bench/bench_api.py ./$(BUILD)/sprig ./$(BUILD)/bench_write

# The web UI's pictures in the README: the browser test, keeping its screenshots.
screenshots: build
	SPRIG_SCREENSHOTS=docs/screenshots /usr/bin/python3 tests/integration/test_web_ui.py ./$(BUILD)/sprig

footprint: build
	tests/bench/footprint.sh ./$(BUILD)/sprig

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
