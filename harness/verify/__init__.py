"""Stage 2, verify: is a variant, or the measurement core itself, to be trusted?

`checks`: the contract every variant is held to (``attnbench check``, and the
registry-parametrized tests). `selfcheck`, `speedcheck`, `timercheck`:
benchmark scripts (``python -m harness.verify.selfcheck`` ...) that print the
figures the measurement core and the built-in variants are held to.
Builds on `harness.measure` only.
"""
