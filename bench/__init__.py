"""Benchmarks: each module prints its figures; `python -m bench` (make bench) runs them all."""
