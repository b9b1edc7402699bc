"""PHP serialize()/unserialize() as Bitrix's SETTINGS need them, checked against the strings the admin writes."""

from __future__ import annotations

import pytest

from syncd.bitrix.migrate import FIELD_SETTINGS, field_settings
from syncd.bitrix.phpserialize import PhpSerializeError, serialize, unserialize

# Copied from bitrix-facts.md: what the Bitrix admin stores for a new field of each type.
ADMIN_SETTINGS = {
    "string": 'a:6:{s:4:"SIZE";i:20;s:4:"ROWS";i:1;s:6:"REGEXP";s:0:"";s:10:"MIN_LENGTH";i:0;'
              's:10:"MAX_LENGTH";i:0;s:13:"DEFAULT_VALUE";s:0:"";}',
    "integer": 'a:4:{s:4:"SIZE";i:20;s:9:"MIN_VALUE";i:0;s:9:"MAX_VALUE";i:0;s:13:"DEFAULT_VALUE";N;}',
    "double": 'a:5:{s:9:"PRECISION";i:2;s:4:"SIZE";i:20;s:9:"MIN_VALUE";d:0;s:9:"MAX_VALUE";d:0;'
              's:13:"DEFAULT_VALUE";N;}',
    "date": 'a:1:{s:13:"DEFAULT_VALUE";a:2:{s:4:"TYPE";s:4:"NONE";s:5:"VALUE";s:0:"";}}',
    "datetime": 'a:3:{s:13:"DEFAULT_VALUE";a:2:{s:4:"TYPE";s:4:"NONE";s:5:"VALUE";s:0:"";}'
                's:10:"USE_SECOND";s:1:"Y";s:12:"USE_TIMEZONE";s:1:"N";}',
    "boolean": 'a:4:{s:13:"DEFAULT_VALUE";i:0;s:7:"DISPLAY";s:8:"CHECKBOX";s:5:"LABEL";a:2:{i:0;s:0:"";i:1;s:0:"";}'
               's:14:"LABEL_CHECKBOX";s:0:"";}',
}


@pytest.mark.parametrize("user_type", sorted(ADMIN_SETTINGS))
def test_settings_byte_for_byte(user_type: str) -> None:
    assert field_settings(user_type) == ADMIN_SETTINGS[user_type]
    assert field_settings(user_type).encode("utf-8") == ADMIN_SETTINGS[user_type].encode("ascii")


@pytest.mark.parametrize("user_type", sorted(ADMIN_SETTINGS))
def test_settings_read_back(user_type: str) -> None:
    back = unserialize(ADMIN_SETTINGS[user_type])
    expected = serialize(FIELD_SETTINGS[user_type])
    assert serialize(back) == expected
    if user_type == "double":
        assert back == {"PRECISION": 2, "SIZE": 20, "MIN_VALUE": 0.0, "MAX_VALUE": 0.0, "DEFAULT_VALUE": None}


def test_cyrillic_length_counts_bytes() -> None:
    assert serialize("Долг") == 's:8:"Долг";'
    assert serialize({"LABEL": "Задолженность"}) == 'a:1:{s:5:"LABEL";s:26:"Задолженность";}'
    assert unserialize('s:8:"Долг";') == "Долг"
    assert unserialize(serialize({"К": ["ё", "€"]}).encode("utf-8")) == {"К": {0: "ё", 1: "€"}}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "N;"),
        (True, "b:1;"),
        (False, "b:0;"),
        (0, "i:0;"),
        (-42, "i:-42;"),
        (0.0, "d:0;"),
        (2.0, "d:2;"),
        (0.5, "d:0.5;"),
        (-1.25, "d:-1.25;"),
        (1e25, "d:1.0E+25;"),
        (1.5e-7, "d:1.5E-7;"),
        (float("inf"), "d:INF;"),
        ("", 's:0:"";'),
        ('say "hi"', 's:8:"say "hi"";'),
        ({}, "a:0:{}"),
        ({1: "a", "b": {"c": None}}, 'a:2:{i:1;s:1:"a";s:1:"b";a:1:{s:1:"c";N;}}'),
        (["x", 3], 'a:2:{i:0;s:1:"x";i:1;i:3;}'),
    ],
)
def test_scalars_and_arrays(value: object, text: str) -> None:
    assert serialize(value) == text  # type: ignore[arg-type]
    back = unserialize(text)
    if isinstance(value, list):
        assert back == dict(enumerate(value))
    else:
        assert back == value


def test_quotes_inside_strings_are_read_by_length() -> None:
    assert unserialize('a:1:{s:1:"k";s:5:"a";b"";}') == {"k": 'a";b"'}


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "s:5:\"abc\";",  # length says 5, only 3 bytes
        "s:1:\"Д\";",  # length cuts a character in half
        "a:2:{i:0;i:1;}",  # fewer items than announced
        "i:1;i:2;",  # trailing data
        "i:x;",
        "O:8:\"stdClass\":0:{}",  # objects are refused
        "a:1:{d:1.5;i:1;}",  # float keys do not exist in PHP
        "b:2;",
    ],
)
def test_invalid_is_refused(bad: str) -> None:
    with pytest.raises(PhpSerializeError):
        unserialize(bad)


def test_unserializable_values_are_refused() -> None:
    with pytest.raises(PhpSerializeError):
        serialize({1.5: "x"})
    with pytest.raises(PhpSerializeError):
        serialize(object())  # type: ignore[arg-type]
