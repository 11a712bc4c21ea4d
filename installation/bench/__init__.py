"""Benchmarks: commands that print numbers (never tests). `python -m installation.bench NAME`
runs installation/bench/NAME.py's `main(argv) -> int`; each area owns its own module."""
