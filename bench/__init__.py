"""Throughput benchmarks of ivz-bridge against references measured in the same run.

``python -m bench.run`` (``make bench``) prints the table; docs/benchmarks.md explains it.
"""
