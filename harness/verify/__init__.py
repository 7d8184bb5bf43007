"""Stage 2, verify: is a variant to be trusted?

`checks`: the contract every variant is held to (``attnbench check``, and the
registry-parametrized tests); `dimensions`: its masks and score modifications;
`yardstick`: float64's answer and the tolerances. Builds on `harness.measure` only. The benchmark
scripts that print the figures the measurement core is held to live in
`harness.bench`.
"""
