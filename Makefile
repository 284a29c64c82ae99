# The two commands: `make demo` runs the main job, `make test` the tests.
# Each sets up .venv first (fast when nothing changed).
.PHONY: demo test test-unit

demo:
	@scripts/setup.sh demo
	.venv/bin/jina-v4 demo --auto-tiny

test:
	@scripts/setup.sh test
	@scripts/setup_test_system.sh
	.venv/bin/python -m pytest tests

# the pure code's tests: seconds, no database
test-unit:
	@scripts/setup.sh test
	.venv/bin/python -m pytest tests/unit
