# jiesu — the two commands a user needs are `make up` and `make test`.
.PHONY: up install lint format test test-only services-up services-down clean

UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

install:            ## install uv (if missing) and the locked dependencies
	@scripts/bootstrap.sh

up: install         ## run intake :8001, dispatch :8002, evaluation :8003 (SQLite under var/, embedded bus)
	$(UV) run jiesu up

lint: install       ## ruff (lint + format check) and mypy --strict
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

format: install
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

services-up: install  ## start local PostgreSQL and Kafka (data under var/)
	scripts/postgres.sh start
	scripts/kafka.sh start

services-down:
	-scripts/kafka.sh stop
	-scripts/postgres.sh stop

test:               ## lint, start PostgreSQL and Kafka, run every test
	@scripts/test.sh

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
