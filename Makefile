# Entry points: `make run` to use wsexec locally, `make test` for the suite (what .ci/run calls), `make test-unit`
# for the daemon-free tier (seconds), `make lint`, `make bench`.
.PHONY: setup dev-setup run demo-host test test-unit bench lint

setup:
	scripts/setup.sh

dev-setup:
	scripts/setup.sh dev

run: setup
	scripts/run.sh

demo-host: setup
	scripts/demo-host.sh

test: dev-setup
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)

test-unit: dev-setup
	.venv/bin/python -m pytest -q tests/unit $(PYTEST_ARGS)

bench: dev-setup
	.venv/bin/python -m bench $(BENCH_ARGS)

lint: dev-setup
	.venv/bin/ruff check .
	.venv/bin/mypy
