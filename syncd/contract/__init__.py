"""The contract with 1C (docs/export-format.md): what an export may hold, and how syncd checks it.

- `fields`: one table per record kind (each field's key, XML spelling, parser, rule, HL-block column).
- `records`: the typed records that flow reader → checker → writer.
- `values`: the value parsers and how a bad value is shown in a message.
- `checks`: `Checker`, raw records to typed ones, and the checks that need the whole file; `fastpath`: the
  conversion of a good record, compiled from the table; `unique`: ids unique in the whole file.
- `raw`: `RawCounterparty`, a counterparty as a reader hands it over.
- `limits`: how much of a file syncd will read (nesting, sizes, expansion).
- `idspill`: the checker's id hashes, spilled to a temporary file so memory does not grow with the file.

Nothing here touches a file, a socket or the database.
"""
