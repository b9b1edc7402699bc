"""The Bitrix database: the three HL-blocks syncd owns and everything that writes or reads them.

- `schema`: the blocks' fields and data tables, from the field table (syncd.contract.fields).
- `migrate`: `syncd migrate` creates or adopts the blocks (b_hlblock_entity, b_user_field, the tables);
  `owntables` upgrades syncd's own tables (Alembic, migrations/); `core` checks it is a Bitrix database;
  `phpserialize` reads and writes the PHP-serialized settings Bitrix keeps in b_user_field.
- `hlblock`: the writer, one export applied in the caller's transaction: what to write. `rows`: a block's
  row spelled once, from the field table (columns, values, SQL text); `sql`: how SQL text is rendered and
  sent; `digests`: what was applied, so an unchanged counterparty is confirmed, not read back; `blocks`:
  the writer's tables, options and counts.
- `asof`: as-of stamps in UTC and in the site's zone; `capacity`: what the text columns can hold.
- `users`: which site user a counterparty belongs to (link_by strategies); `linking`: UF_BITRIX_USER_ID
  recomputed on every row from those links.
"""
