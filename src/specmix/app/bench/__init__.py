"""Benchmarks: one timing harness (``harness``), the timed ops (``ops``), the scaling sweep
(``sweep``, its outputs in ``report``) and cached-decoding speed (``decode``)."""
