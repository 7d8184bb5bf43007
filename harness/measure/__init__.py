"""Stage 1, measure: one case in this process -> one `Record`.

Seeded inputs (`case`), the clocks and their stopping rule (`sampling`,
`timing`, `cuda_timing`), what the machine did meanwhile (`interference`),
peak memory (`memory`), error against float64 (`reference`, `accuracy`),
the machine's ceilings (`ceilings`, `env`, `device`), and `measure_case`,
which runs those passes in order. Imports nothing from the later stages.
"""
