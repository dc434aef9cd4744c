"""Benchmarks of the autodiff engine against its peers: `python -m bench` (see README)."""
