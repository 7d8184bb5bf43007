"""Stage 4, analyze: results tables in, derived tables out (pure pandas, no kernel, no registry).

`fits`: power-law fits and crossovers of curves; `tables`: the per-curve
tables the report and the CLI show; `compare`: two runs case by case.
"""
