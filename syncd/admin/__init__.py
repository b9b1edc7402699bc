"""The admin commands the CLI wraps: what an operator asks of syncd besides a run.

- `status`: `syncd status` and `syncd check` (the run journal, the ledger, the source).
- `links`: `syncd links …`, manual counterparty-to-user links.
- `metrics`: the Prometheus metrics the daemon serves.
- `validate`: `syncd validate`, every problem of a file, offline.
- `setup`: `syncd migrate` (the blocks and syncd's own tables).
- `jsonout`: `--json` of `syncd check` and `syncd validate`.
- `configcheck`: `syncd config check`, the configuration and every connection tried, nothing changed.
- `demo`: `make demo`, the main job on an embedded default.
"""
