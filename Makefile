# The two commands: `make demo` runs the main job, `make test` the tests.
# Each sets up .venv first (fast when nothing changed).
.PHONY: setup demo test

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/python examples/quickstart.py --auto-tiny

test: setup
	@scripts/setup_test_system.sh
	.venv/bin/python -m pytest tests
