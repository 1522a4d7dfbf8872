"""The deal price in its group's currency (issue 12, item 7): `parse_price_in` turns any text
into a bounded positive amount in the group's currency or a ParseError with the reason the
answer explains; never another exception, never a price in another currency. The examples
the wizard offers are in the group's currency and are read back as what they show."""

from __future__ import annotations

import re

import pytest
from aiogram.utils.i18n import I18n
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.i18n import LOCALES_DIR
from services.money import minor_digits
from services.parsing import MAX_PRICE_MAJOR, SYMBOLS, ParseError, parse_price_in, parse_tiers
from views.deal_texts import amount_example, price_example, tiers_example


@pytest.fixture
def english():
    i18n = I18n(path=LOCALES_DIR, default_locale="en", domain="messages")
    with i18n.context(), i18n.use_locale("en"):
        yield


CURRENCIES = ["CNY", "EUR", "USD", "HKD", "JPY", "GBP", "KWD", "CHF"]
REASONS = {
    "price_format",
    "price_currency",
    "price_other_currency",
    "price_positive",
    "price_too_large",
    "price_decimals",
}
# What prices are typed with: digits, separators, signs, symbols, codes, and anything else.
pieces = st.one_of(
    st.sampled_from(list("0123456789.,+- ")),
    st.sampled_from([*SYMBOLS, "CNY", "EUR", "USD", "JPY", "abc", "XYZ", "e5", "NaN", "\u00a0"]),
    st.characters(),
)
price_texts = st.one_of(st.text(), st.lists(pieces, max_size=12).map("".join))


@settings(deadline=None, max_examples=400)
@given(price_texts, st.sampled_from(CURRENCIES))
@example("¥12.5", "EUR")
@example("abc", "EUR")
@example("12.50 XYZ", "EUR")
@example("1e5", "CNY")
@example("١٢", "CNY")
def test_any_text_is_a_bounded_price_in_the_groups_currency_or_a_reason(text, currency) -> None:
    try:
        price = parse_price_in(text, currency)
    except ParseError as err:
        assert err.reason in REASONS
        assert err.detail["currency"] == currency  # the answer's example is in this currency
        if err.reason == "price_other_currency":
            assert err.detail["given"] != currency
        return
    assert price.currency == currency
    assert 0 < price.amount <= MAX_PRICE_MAJOR * 10 ** minor_digits(currency)


@pytest.mark.parametrize(
    ("text", "currency", "reason"),
    [
        ("¥12.5", "EUR", "price_other_currency"),
        ("12.50 CNY", "EUR", "price_other_currency"),
        ("$3", "EUR", "price_other_currency"),
        ("€3", "USD", "price_other_currency"),
        ("12.5 JPY", "EUR", "price_other_currency"),  # the currency first, not its decimals
        ("abc", "EUR", "price_format"),
        ("twelve", "EUR", "price_format"),
        ("12.50 XYZ", "EUR", "price_currency"),
        ("12.5", "JPY", "price_decimals"),
        ("0", "EUR", "price_positive"),
        ("99999999", "EUR", "price_too_large"),
    ],
)
def test_the_reason_of_a_refused_price(text, currency, reason) -> None:
    with pytest.raises(ParseError) as caught:
        parse_price_in(text, currency)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [("€12.50", "EUR", 1250), ("12,50", "EUR", 1250), ("12.50 EUR", "EUR", 1250),
     ("¥1250", "JPY", 1250), ("$12.5", "HKD", 1250), ("¥12.5", "CNY", 1250),
     ("12.500 KWD", "KWD", 12500)],
)  # fmt: skip
def test_a_price_in_the_groups_currency_is_read(text, currency, amount) -> None:
    assert parse_price_in(text, currency).amount == amount


@pytest.mark.parametrize("currency", CURRENCIES)
def test_the_examples_are_in_the_groups_currency_and_read_back(english, currency) -> None:
    shown = price_example(currency)
    examples = re.findall(r"<code>(.*?)</code>", shown)
    assert len(examples) == 2
    amounts = {parse_price_in(e, currency).amount for e in examples}
    assert len(amounts) == 1  # both say the same price
    if currency != "CNY":
        assert "¥12.5" not in shown and "CNY" not in shown
    digits = minor_digits(currency)
    plain = examples[0]
    assert (len(plain.partition(".")[2]) if "." in plain else 0) == digits
    unit = parse_price_in(amount_example("12", currency), currency).amount
    tiers = parse_tiers(tiers_example(currency), currency, unit)  # the tiers example works too
    assert [t for t, _p in tiers] == [10, 20]


def test_jpy_examples_have_no_decimals(english) -> None:
    assert price_example("JPY") == "<code>1250</code> or <code>¥1250</code>"
    assert tiers_example("JPY") == "10:1100, 20:990"
    assert price_example("EUR") == "<code>12.50</code> or <code>€12.50</code>"
    assert price_example("CHF") == "<code>12.50</code> or <code>12.50 CHF</code>"
