from __future__ import annotations

import email
import email.policy
from email.header import decode_header, make_header
from typing import Any

import pytest
from pytest_django.fixtures import SettingsWrapper

from campaigns.headers import (
    HeaderInjection,
    InvalidAddress,
    address_header,
    check_header_name,
    check_header_value,
    format_address,
    make_message_id,
    parse_verp,
    unstructured_header,
    verp_return_path,
)

STRICT = email.policy.default.clone(raise_on_defect=True)


def parse_header(line: str) -> Any:
    """The header as the stdlib's strict parser reads it (a str subclass with .addresses etc.)."""
    message = email.message_from_string(line + "\r\n\r\n", policy=STRICT)
    name = line.split(":", 1)[0]
    return message[name]


@pytest.mark.parametrize(
    "bad",
    ["Hi\r\nBcc: victim@example.com", "Hi\nthere", "Hi\rthere", "nul\x00byte", "line\u2028sep", "para\u2029sep", "nel\x85x", "esc\x1bx"],
)
def test_it_refuses_control_characters_and_names_the_field(bad: str) -> None:
    with pytest.raises(HeaderInjection, match="^Subject: value contains"):
        check_header_value("Subject", bad)


def test_it_says_which_character_broke_the_line() -> None:
    with pytest.raises(HeaderInjection, match=r"line feed \(LF\) at position 2"):
        check_header_value("To name", "ab\ncd")


def test_it_accepts_ordinary_text_and_tabs() -> None:
    assert check_header_value("Subject", "Hola\tJosé — 50% off!") == "Hola\tJosé — 50% off!"


@pytest.mark.parametrize("bad", ["X Bad", "X:Bad", "", "Ñame"])
def test_it_refuses_invalid_header_names(bad: str) -> None:
    with pytest.raises(HeaderInjection):
        check_header_name(bad)


def test_a_plain_name_is_written_as_is() -> None:
    assert format_address("Jane Doe", "jane@example.com") == "Jane Doe <jane@example.com>"
    assert format_address("", "jane@example.com") == "jane@example.com"


def test_a_name_with_specials_is_quoted_and_round_trips() -> None:
    value = format_address('Doe, "JD" Jane (sales)', "jane@example.com")
    assert value.startswith('"Doe, \\"JD\\" Jane (sales)"')
    address = parse_header("To: " + value).addresses[0]
    assert address.display_name == 'Doe, "JD" Jane (sales)'
    assert address.addr_spec == "jane@example.com"


@pytest.mark.parametrize("name", ["José Müller", "佐藤 花子", "=?utf-8?q?not_an_encoded_word?="])
def test_a_name_that_needs_encoding_round_trips(name: str) -> None:
    value = format_address(name, "jose@example.com")
    assert value.isascii()
    address = parse_header("To: " + value).addresses[0]
    assert address.display_name == name
    assert address.addr_spec == "jose@example.com"


def test_a_long_non_ascii_name_is_folded_within_76_columns_and_round_trips() -> None:
    name = "Señora María José de la Concepción Fernández-Núñez y Müller " * 3
    line = address_header("To", name, "maria@example.com")
    assert all(len(physical) <= 76 for physical in line.split("\r\n"))
    assert line.count("\r\n") >= 2
    phrase = line.split(":", 1)[1].rsplit("<", 1)[0]
    assert str(make_header(decode_header(phrase.strip()))) == name.strip()
    # Python's address parser puts a space between adjacent encoded-words (RFC 2047
    # says to join them); splitting at spaces keeps it to a doubled space.
    address = parse_header(line).addresses[0]
    assert " ".join(address.display_name.split()) == name.strip()
    assert address.addr_spec == "maria@example.com"


def test_an_internationalised_domain_becomes_punycode() -> None:
    assert format_address(None, "info@bücher.example") == "info@xn--bcher-kva.example"


@pytest.mark.parametrize("bad", ["josé@example.com", "no-at-sign", "a@", "@b.com", "a b@example.com", "a@exa mple.com"])
def test_it_refuses_addresses_it_cannot_write(bad: str) -> None:
    with pytest.raises(InvalidAddress):
        format_address("X", bad)


def test_it_refuses_injection_through_a_name_or_an_address() -> None:
    with pytest.raises(HeaderInjection, match="name"):
        format_address("Eve\r\nBcc: all@example.com", "eve@example.com")
    with pytest.raises(HeaderInjection, match="address"):
        format_address("Eve", "eve@example.com\r\nBcc: all@example.com")


def test_a_long_ascii_subject_is_folded_at_spaces_and_round_trips_exactly() -> None:
    subject = "A quarterly update on " + "deliverability and reputation " * 6 + "for you"
    line = unstructured_header("Subject", subject)
    assert "=?" not in line
    assert all(len(physical) <= 78 for physical in line.split("\r\n"))
    assert line.count("\r\n") >= 2
    assert parse_header(line) == subject


def test_a_long_non_ascii_subject_uses_encoded_words_and_round_trips() -> None:
    subject = "¿Qué tal, José? Una propuesta para Ñandú & Cía — válida hasta el miércoles " * 2
    line = unstructured_header("Subject", subject)
    assert line.isascii()
    assert all(len(physical) <= 76 for physical in line.split("\r\n"))
    assert parse_header(line) == subject


def test_emoji_are_never_split_across_encoded_words() -> None:
    subject = "🎉" * 40
    assert parse_header(unstructured_header("Subject", subject)) == subject


def test_ascii_that_looks_like_an_encoded_word_is_not_decoded_by_the_reader() -> None:
    subject = "Literally =?utf-8?b?SGFjaw==?= here"
    assert parse_header(unstructured_header("Subject", subject)) == subject


def test_message_ids_are_unique_and_well_formed() -> None:
    ids = {make_message_id("example.com") for _ in range(2000)}
    assert len(ids) == 2000
    sample = ids.pop()
    assert sample.startswith("<") and sample.endswith("@example.com>")
    assert str(parse_header("Message-ID: " + sample)) == sample


def test_a_verp_address_round_trips(settings: SettingsWrapper) -> None:
    address = verp_return_path(123456, "bounces.example.com")
    local, domain = address.split("@")
    assert domain == "bounces.example.com"
    assert local.startswith("b-123456-") and len(local) <= 64
    assert parse_verp(address) == 123456
    assert parse_verp(f"<{address.upper()}>") == 123456
    assert parse_verp(address, bounce_domain="bounces.example.com") == 123456


def test_a_forged_or_altered_verp_address_is_refused(settings: SettingsWrapper) -> None:
    address = verp_return_path(42, "bounces.example.com")
    local, domain = address.split("@")
    mac = local.rsplit("-", 1)[1]
    assert parse_verp(f"b-43-{mac}@{domain}") is None
    flipped = mac[:-1] + ("a" if mac[-1] != "a" else "b")
    assert parse_verp(f"b-42-{flipped}@{domain}") is None
    assert parse_verp(address, bounce_domain="other.example.com") is None
    for garbage in ["", "b-42@x", "b-42-@x", "postmaster@example.com", "b--aaaaaaaaaaaaaaaa@x", "no at sign"]:
        assert parse_verp(garbage) is None


def test_a_verp_address_made_with_another_secret_is_refused(settings: SettingsWrapper) -> None:
    settings.SECRET_KEY = "one-secret-" + "x" * 40
    address = verp_return_path(7, "bounces.example.com")
    settings.SECRET_KEY = "another-secret-" + "y" * 40
    assert parse_verp(address) is None


def test_a_verp_address_survives_a_key_rotation_through_fallbacks(settings: SettingsWrapper) -> None:
    old = "old-secret-" + "x" * 40
    settings.SECRET_KEY = old
    address = verp_return_path(7, "bounces.example.com")
    settings.SECRET_KEY = "new-secret-" + "y" * 40
    settings.SECRET_KEY_FALLBACKS = [old]
    assert parse_verp(address) == 7


@pytest.mark.parametrize("bad", [-1, True, "12", 1.5])
def test_verp_refuses_ids_that_are_not_non_negative_ints(bad: object) -> None:
    with pytest.raises(ValueError):
        verp_return_path(bad, "bounces.example.com")  # type: ignore[arg-type]
