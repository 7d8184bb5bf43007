"""Stage 5, report: results and derived tables in, files and text for people out.

`build` writes the report folder (HTML from `templates/`, Markdown, CSV
tables), `figures` its seaborn figures, `export` a pytest-benchmark document,
`console` the plain-text tables the CLI prints. Runs no kernel and never
imports the variant registry: every record carries what the report needs.
"""
