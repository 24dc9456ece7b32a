"""Benchmarks of qwenchat itself (`make bench`): speed and memory targets live here, not in
the tests. Each module has a ``main()`` that prints what it measured in this run and returns
a dict; everything measured on the emulated phone is labelled SIMULATED."""
