"""The three HL-blocks syncd owns: their fields, Bitrix types and data tables.

Their fields are the columns of the field table (syncd.contract.fields); this adds the blocks' names,
titles and keys. `migrate` creates them from it, the writer builds its SQLAlchemy tables from it, and
tests compare the database against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import Column as SqlColumn
from sqlalchemy import Date, DateTime, Double, Integer, MetaData, Table, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

from syncd.config import BlockNames
from syncd.contract.fields import COUNTERPARTY, DOCUMENT, PAYMENT, Column, Kind, UserType

Role = Literal["balance", "payments", "documents"]


# A block's field is a column of the field table (syncd.contract.fields).
FieldSpec = Column


@dataclass(frozen=True)
class BlockSpec:
    role: Role
    name: str
    table: str
    title_ru: str
    title_en: str
    key: str  # the field that identifies a row for syncd
    fields: tuple[FieldSpec, ...]

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


# The blocks' fields, in order after ID: the columns of the record kinds stored in them.
BALANCE_FIELDS: Final = COUNTERPARTY.columns
PAYMENT_FIELDS: Final = PAYMENT.columns
DOCUMENT_FIELDS: Final = DOCUMENT.columns


def _key(kind: Kind) -> str:
    """The column that identifies a row for syncd: the record's id."""
    column = kind.field("id").column
    assert column is not None
    return column.name


def block_specs(names: BlockNames) -> tuple[BlockSpec, BlockSpec, BlockSpec]:
    """The three blocks under the names the configuration gives them."""
    return (
        BlockSpec("balance", names.balance_block, names.balance_table, "Взаиморасчёты: баланс контрагента",
                  "Settlements: counterparty balance", _key(COUNTERPARTY), BALANCE_FIELDS),
        BlockSpec("payments", names.payments_block, names.payments_table, "Взаиморасчёты: оплаты",
                  "Settlements: payments", _key(PAYMENT), PAYMENT_FIELDS),
        BlockSpec("documents", names.documents_block, names.documents_table, "Взаиморасчёты: открытые документы",
                  "Settlements: open documents", _key(DOCUMENT), DOCUMENT_FIELDS),
    )


def column_type(user_type: UserType) -> TypeEngine[Any]:
    """The column type Bitrix gives a field of this USER_TYPE_ID (MySQL; generic elsewhere)."""
    types: dict[UserType, TypeEngine[Any]] = {
        "string": Text(),
        "integer": Integer(),
        "double": Double().with_variant(mysql.DOUBLE(asdecimal=False), "mysql", "mariadb"),
        "date": Date(),
        "datetime": DateTime(),
    }
    return types[user_type]


def data_table(spec: BlockSpec, metadata: MetaData | None = None) -> Table:
    """The block's data table as SQLAlchemy Core sees it (ID plus one column per field)."""
    md = metadata if metadata is not None else MetaData()
    cols: list[SqlColumn[Any]] = [SqlColumn("ID", Integer, primary_key=True, autoincrement=True)]
    cols += [SqlColumn(f.name, column_type(f.type), nullable=True) for f in spec.fields]
    return Table(spec.table, md, *cols, extend_existing=True)
