"""What each field of an export is, in one table: its contract key, its XML spelling, its value, its rule,
and the HL-block column it is stored in.

Everything else is derived from here: the records' attributes (syncd.contract.records), the readers'
key sets and XML element names, the checker's slow path (every field reported), the column capacity
checks, the blocks' fields (syncd.bitrix.schema) and the writer's rows (syncd.bitrix.rows). The XSD and
the JSON Schema in syncd/schemas are tested field by field against it (tests/test_fields.py).

Adding a field is one row in one of the blocks below (and its sentence in docs/export-format.md):
`Field(key, value, column=Column(…))`. A row's place in its block is its column's place in the
HL-block. tests/test_fields.py proves it: it adds a row to a copy of syncd and round-trips a value
through XML, JSON, `syncd migrate` and a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

# How a value is read (syncd.contract.values; "datetime" needs the file's zone, see Checker).
Value = Literal["guid", "amount", "text", "date", "datetime", "currency", "inn", "kpp", "payment_kind",
                "document_kind"]
# The Bitrix USER_TYPE_ID of a column, which decides its SQL type.
UserType = Literal["string", "integer", "double", "date", "datetime"]
# What a derived column (one the file does not spell) holds, filled in by the writer.
Derived = Literal["counterparty", "user", "currency", "as_of", "last_payment_date", "last_payment_sum"]
Rule = Literal["", "non_negative", "non_zero"]
Index = Literal["unique", "plain", None]


@dataclass(frozen=True)
class Column:
    name: str  # UF_…
    type: UserType
    label_ru: str
    label_en: str
    index: Index = None


@dataclass(frozen=True)
class Field:
    """A value the file spells; `column` is where it is stored (None: read and checked, not stored)."""

    key: str  # the contract's name: the JSON key, the XML attribute (or element, see `element`)
    value: Value
    required: bool = False
    rule: Rule = ""
    column: Column | None = None
    element: str | None = None  # XML writes it as this child element of its record, not as an attribute
    default: str | None = None  # the record's value when the file leaves it out (a Python literal)

    @property
    def attr(self) -> str:
        """The record's attribute: the key in snake case (overdueDebt -> overdue_debt)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.key).lower()

    @property
    def xml(self) -> str:
        """How the file spells it in XML: the element's name, or the attribute's (the key)."""
        return self.element or self.key


@dataclass(frozen=True)
class Fill:
    """A column the writer fills from something other than the record's own value."""

    source: Derived
    column: Column


Row = Field | Fill


@dataclass(frozen=True)
class Kind:
    """One record kind of the contract: its XML element, its fields, and (if stored) its block's columns."""

    name: str  # the XML element and the record class: Counterparty, Payment, Document
    rows: tuple[Row, ...]
    block: str | None = None  # the HL-block role it is stored in: balance, payments, documents

    @property
    def fields(self) -> tuple[Field, ...]:
        return tuple(r for r in self.rows if isinstance(r, Field))

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(f.key for f in self.fields)

    @property
    def columns(self) -> tuple[Column, ...]:
        """The block's columns in order (after ID)."""
        return tuple(r.column for r in self.rows if r.column is not None)

    @property
    def attributes(self) -> tuple[Field, ...]:
        """The fields XML spells as attributes of the record's element."""
        return tuple(f for f in self.fields if f.element is None)

    @property
    def elements(self) -> tuple[Field, ...]:
        """The fields XML spells as child elements of the record's element (the counterparty's amounts)."""
        return tuple(f for f in self.fields if f.element is not None)

    def field(self, key: str) -> Field:
        for f in self.fields:
            if f.key == key:
                return f
        raise KeyError(key)


def _col(name: str, type_: UserType, ru: str, en: str, index: Index = None) -> Column:
    return Column(name, type_, ru, en, index)


_COUNTERPARTY_ID: Final = _col("UF_CONTRACTOR_XML_ID", "string", "GUID контрагента в 1С", "Counterparty GUID in 1C",
                               "plain")
_USER: Final = _col("UF_BITRIX_USER_ID", "integer", "Пользователь сайта", "Site user ID", "plain")
_CURRENCY: Final = _col("UF_CURRENCY", "string", "Валюта", "Currency")
_AS_OF: Final = _col("UF_UPDATED_AT", "datetime", "Данные на", "Data as of")

COUNTERPARTY: Final = Kind("Counterparty", block="balance", rows=(
    Field("id", "guid", required=True, column=_col("UF_CONTRACTOR_XML_ID", "string", "GUID контрагента в 1С",
                                                    "Counterparty GUID in 1C", "unique")),
    Fill("user", _USER),
    Field("debt", "amount", required=True, rule="non_negative", element="Debt",
          column=_col("UF_DEBT", "double", "Задолженность", "Debt")),
    Field("overdueDebt", "amount", rule="non_negative", element="OverdueDebt", default="_ZERO",
          column=_col("UF_OVERDUE_DEBT", "double", "Просроченная задолженность", "Overdue debt")),
    Field("creditLimit", "amount", rule="non_negative", element="CreditLimit",
          column=_col("UF_CREDIT_LIMIT", "double", "Кредитный лимит", "Credit limit")),
    Fill("last_payment_date", _col("UF_LAST_PAYMENT_DATE", "date", "Дата последней оплаты", "Last payment date")),
    Fill("last_payment_sum", _col("UF_LAST_PAYMENT_SUM", "double", "Сумма последней оплаты", "Last payment sum")),
    Fill("as_of", _AS_OF),
    Field("payable", "amount", rule="non_negative", element="Payable", default="_ZERO",
          column=_col("UF_PAYABLE", "double", "Наша задолженность (аванс, переплата)",
                      "Payable (advance, overpayment)")),
    Field("currency", "currency", default="'RUB'", column=_CURRENCY),
    Field("inn", "inn", column=_col("UF_INN", "string", "ИНН", "INN")),
    Field("kpp", "kpp", column=_col("UF_KPP", "string", "КПП", "KPP")),
    Field("name", "text", column=_col("UF_NAME", "string", "Контрагент", "Counterparty name")),
))

PAYMENT: Final = Kind("Payment", block="payments", rows=(
    Field("id", "guid", required=True, column=_col("UF_PAYMENT_XML_ID", "string", "GUID платежа в 1С",
                                                    "Payment GUID in 1C", "unique")),
    Fill("counterparty", _COUNTERPARTY_ID),
    Fill("user", _USER),
    Field("date", "datetime", required=True, column=_col("UF_DATE", "datetime", "Дата оплаты", "Payment date")),
    Field("sum", "amount", required=True, rule="non_zero", column=_col("UF_SUM", "double", "Сумма", "Sum")),
    Fill("currency", _CURRENCY),
    Field("number", "text", column=_col("UF_NUMBER", "string", "Номер документа", "Document number")),
    Field("kind", "payment_kind", column=_col("UF_KIND", "string", "Вид оплаты", "Payment kind")),
    Field("purpose", "text", column=_col("UF_PURPOSE", "string", "Назначение платежа", "Payment purpose")),
    Fill("as_of", _AS_OF),
))

# One document may appear once per due date (payment schedule stages), so its id is not unique.
DOCUMENT: Final = Kind("Document", block="documents", rows=(
    Field("id", "guid", required=True, column=_col("UF_DOCUMENT_XML_ID", "string", "GUID документа в 1С",
                                                    "Document GUID in 1C", "plain")),
    Fill("counterparty", _COUNTERPARTY_ID),
    Fill("user", _USER),
    Field("kind", "document_kind", column=_col("UF_KIND", "string", "Вид документа", "Document kind")),
    Field("number", "text", column=_col("UF_NUMBER", "string", "Номер документа", "Document number")),
    Fill("currency", _CURRENCY),
    Field("date", "date", required=True, column=_col("UF_DATE", "date", "Дата документа", "Document date")),
    Field("dueDate", "date", column=_col("UF_DUE_DATE", "date", "Срок оплаты", "Due date")),
    Field("amount", "amount", column=_col("UF_AMOUNT", "double", "Сумма документа", "Document amount")),
    Field("outstanding", "amount", required=True, rule="non_negative",
          column=_col("UF_OUTSTANDING", "double", "Остаток к оплате", "Outstanding")),
    Fill("as_of", _AS_OF),
))

# Read and checked, not stored as such: the header, the summary, and a counterparty's last payment
# (which the writer turns into UF_LAST_PAYMENT_DATE and UF_LAST_PAYMENT_SUM).
HEADER: Final = Kind("Header", rows=(
    Field("formatVersion", "text", required=True),
    Field("exportId", "guid", required=True),
    Field("generatedAt", "datetime", required=True),
    Field("mode", "text"),
    Field("paymentsFrom", "date"),
))
SUMMARY: Final = Kind("Summary", rows=(
    Field("counterparties", "text", required=True),
    Field("payments", "text", required=True),
    Field("documents", "text", required=True),
))
LAST_PAYMENT: Final = Kind("LastPayment", rows=(Field("date", "date"), Field("sum", "amount")))

STORED: Final = (COUNTERPARTY, PAYMENT, DOCUMENT)  # the kinds with a block, in the blocks' order
# A counterparty's nested parts: in JSON, keys of its object; in XML, its child elements.
COUNTERPARTY_PARTS: Final = {"lastPayment": "LastPayment", "payments": "Payments", "openDocuments": "OpenDocuments"}
