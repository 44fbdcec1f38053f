"""Typed results and the rows every front end shows, computed once here (the CLI prints them,
the window's table models read them).

`compression` (CompressionReport, RunReport: report.json) and `export` (ExportReport:
FILE.report.json) are frozen dataclasses sharing one generic to_dict/from_dict (`serial`);
`rows` and `export_rows` turn them into the headline, compare, per-layer and verification rows."""
