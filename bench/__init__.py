"""Benchmarks of the offline plan (``make bench``)."""
