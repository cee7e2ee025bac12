"""Benchmarks for storygen (issue 8). Run with `python -m bench`; prints JSON lines + a table."""
