"""Project-wide pytest configuration.

The plugin under test is installed (entry point ``pytest11: rollout``), so nothing needs loading
here; shared test fixtures live in tests/conftest.py.
"""
