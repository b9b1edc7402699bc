"""Export files (format v1, see docs/export-format.md): XML or JSON, plain, .gz or single-file .zip.

Public functions (the rest of syncd uses only these):

- `read_header(path, name=…, source_tz=…) -> Header`: the header alone, cheap for XML.
- `open_export(path, name=…, source_tz=…)`: a context manager giving an `Export` whose
  `counterparties()` streams validated `Counterparty` records. It raises `ExportError` at the
  first problem, including, after the last record, a summary count mismatch or an id seen twice.
  Memory does not grow with the file.

`name` is the file name used in messages; `source_tz` is the zone of naive datetimes.
"""
