"""The three HL-blocks syncd owns: their fields, Bitrix types and data tables.

This is the single description of the blocks; `migrate` creates them from it, the writer builds
its SQLAlchemy tables from it, and tests compare the database against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Column, Date, DateTime, Double, Integer, MetaData, Table, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

from syncd.config import BlockNames

UserType = Literal["string", "integer", "double", "date", "datetime"]
Role = Literal["balance", "payments", "documents"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: UserType
    label_ru: str
    label_en: str
    index: Literal["unique", "plain", None] = None


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


def _f(name: str, type_: UserType, ru: str, en: str, index: Literal["unique", "plain", None] = None) -> FieldSpec:
    return FieldSpec(name, type_, ru, en, index)


BALANCE_FIELDS = (
    _f("UF_CONTRACTOR_XML_ID", "string", "GUID контрагента в 1С", "Counterparty GUID in 1C", "unique"),
    _f("UF_BITRIX_USER_ID", "integer", "Пользователь сайта", "Site user ID", "plain"),
    _f("UF_DEBT", "double", "Задолженность", "Debt"),
    _f("UF_OVERDUE_DEBT", "double", "Просроченная задолженность", "Overdue debt"),
    _f("UF_CREDIT_LIMIT", "double", "Кредитный лимит", "Credit limit"),
    _f("UF_LAST_PAYMENT_DATE", "date", "Дата последней оплаты", "Last payment date"),
    _f("UF_LAST_PAYMENT_SUM", "double", "Сумма последней оплаты", "Last payment sum"),
    _f("UF_UPDATED_AT", "datetime", "Данные на", "Data as of"),
    _f("UF_PAYABLE", "double", "Наша задолженность (аванс, переплата)", "Payable (advance, overpayment)"),
    _f("UF_CURRENCY", "string", "Валюта", "Currency"),
    _f("UF_INN", "string", "ИНН", "INN"),
    _f("UF_KPP", "string", "КПП", "KPP"),
    _f("UF_NAME", "string", "Контрагент", "Counterparty name"),
)

PAYMENT_FIELDS = (
    _f("UF_PAYMENT_XML_ID", "string", "GUID платежа в 1С", "Payment GUID in 1C", "unique"),
    _f("UF_CONTRACTOR_XML_ID", "string", "GUID контрагента в 1С", "Counterparty GUID in 1C", "plain"),
    _f("UF_BITRIX_USER_ID", "integer", "Пользователь сайта", "Site user ID", "plain"),
    _f("UF_DATE", "datetime", "Дата оплаты", "Payment date"),
    _f("UF_SUM", "double", "Сумма", "Sum"),
    _f("UF_CURRENCY", "string", "Валюта", "Currency"),
    _f("UF_NUMBER", "string", "Номер документа", "Document number"),
    _f("UF_KIND", "string", "Вид оплаты", "Payment kind"),
    _f("UF_PURPOSE", "string", "Назначение платежа", "Payment purpose"),
    _f("UF_UPDATED_AT", "datetime", "Данные на", "Data as of"),
)

# One document may appear once per due date (payment schedule stages), so its id is not unique.
DOCUMENT_FIELDS = (
    _f("UF_DOCUMENT_XML_ID", "string", "GUID документа в 1С", "Document GUID in 1C", "plain"),
    _f("UF_CONTRACTOR_XML_ID", "string", "GUID контрагента в 1С", "Counterparty GUID in 1C", "plain"),
    _f("UF_BITRIX_USER_ID", "integer", "Пользователь сайта", "Site user ID", "plain"),
    _f("UF_KIND", "string", "Вид документа", "Document kind"),
    _f("UF_NUMBER", "string", "Номер документа", "Document number"),
    _f("UF_CURRENCY", "string", "Валюта", "Currency"),
    _f("UF_DATE", "date", "Дата документа", "Document date"),
    _f("UF_DUE_DATE", "date", "Срок оплаты", "Due date"),
    _f("UF_AMOUNT", "double", "Сумма документа", "Document amount"),
    _f("UF_OUTSTANDING", "double", "Остаток к оплате", "Outstanding"),
    _f("UF_UPDATED_AT", "datetime", "Данные на", "Data as of"),
)


def block_specs(names: BlockNames) -> tuple[BlockSpec, BlockSpec, BlockSpec]:
    """The three blocks under the names the configuration gives them."""
    return (
        BlockSpec("balance", names.balance_block, names.balance_table, "Взаиморасчёты: баланс контрагента",
                  "Settlements: counterparty balance", "UF_CONTRACTOR_XML_ID", BALANCE_FIELDS),
        BlockSpec("payments", names.payments_block, names.payments_table, "Взаиморасчёты: оплаты",
                  "Settlements: payments", "UF_PAYMENT_XML_ID", PAYMENT_FIELDS),
        BlockSpec("documents", names.documents_block, names.documents_table, "Взаиморасчёты: открытые документы",
                  "Settlements: open documents", "UF_DOCUMENT_XML_ID", DOCUMENT_FIELDS),
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
    cols: list[Column[Any]] = [Column("ID", Integer, primary_key=True, autoincrement=True)]
    cols += [Column(f.name, column_type(f.type), nullable=True) for f in spec.fields]
    return Table(spec.table, md, *cols, extend_existing=True)
