# The README's commands. Everything installs through uv from uv.lock; uv itself comes from PyPI into .tools/.
PYTHON ?= python3
UV_VERSION ?= 0.13.9
UV := .tools/bin/uv
VENV := .venv/bin

.PHONY: dev test lint typecheck install bench bench-api-key bench-paystack-webhooks bench-webhook-latency \
	bench-webhook-throughput migrate clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

install: $(UV)
	$(UV) sync --frozen

dev: install ## Run API + in-process worker on SQLite at http://127.0.0.1:8000
	$(VENV)/namaskah dev

lint: install
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

typecheck: install
	$(VENV)/mypy

test: lint typecheck ## ruff, mypy (strict on src/), then pytest against PostgreSQL and Redis
	$(VENV)/pytest

migrate: install
	$(VENV)/namaskah database upgrade

bench: install ## needs nothing running
	$(VENV)/python bench/health_live.py

bench-api-key: install ## needs PostgreSQL and Redis on 127.0.0.1
	$(VENV)/python bench/me_api_key.py

bench-paystack-webhooks: install ## needs PostgreSQL and Redis on 127.0.0.1
	$(VENV)/python bench/paystack_webhooks.py

bench-webhook-latency: install ## needs PostgreSQL and Redis on 127.0.0.1
	$(VENV)/python bench/webhook_latency.py

bench-webhook-throughput: install ## needs PostgreSQL and Redis on 127.0.0.1
	$(VENV)/python bench/webhook_throughput.py

clean:
	rm -rf .venv .tools var .pytest_cache .mypy_cache .ruff_cache
