"""The benchmark (`python -m bench.benchmark`, `nox -s bench`): figures, not a test."""
