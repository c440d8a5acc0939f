# Entry points: `make run` to use wsexec locally, `make test` for the suite (what .ci/run calls), `make test-unit`
# for the daemon-free tier (seconds), `make lint`, `make bench`, `make bench-scale`,
# `make bench-http`, `make vendor`.
.PHONY: setup dev-setup run demo-host test test-unit bench bench-scale bench-http lint vendor

setup:
	scripts/setup.sh

dev-setup:
	scripts/setup.sh dev

run: setup
	scripts/run.sh

demo-host: setup
	scripts/demo-host.sh

# The suite waits on daemons more than it computes: 4 pytest-xdist processes (each with its own Redis and sshd
# daemons) even on 2 cores. TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 4

test: dev-setup
	.venv/bin/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-unit: dev-setup
	.venv/bin/python -m pytest -q tests/unit $(PYTEST_ARGS)

bench: dev-setup
	.venv/bin/python -m bench $(BENCH_ARGS)

# Stored tasks 1k, 100k, 1M (BENCH_ARGS=--sizes=1k,10k for a quick run): list, GET and POST latency, Redis per call
bench-scale: dev-setup
	.venv/bin/python -m bench.scale $(BENCH_ARGS)

# GET one task at 50 connections with wrk: gunicorn directly and through nginx/wsexec.conf, several process counts
bench-http: dev-setup
	.venv/bin/python -m bench.throughput $(BENCH_ARGS)

lint: dev-setup
	.venv/bin/ruff check .
	.venv/bin/mypy

# Refresh the console's vendored JavaScript (wsexec/ui/static/vendor, versions in its VERSIONS file) with npm pack.
vendor:
	scripts/vendor.sh
