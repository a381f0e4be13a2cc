from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from pytest_django.fixtures import SettingsWrapper
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.exceptions import ImproperlyConfigured

from campaigns.dkim import DkimSigner, signer_from_settings
from campaigns.rendering import CompiledMessage
from campaigns.unsubscribe import make_token


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


@pytest.fixture
def signer(private_key: rsa.RSAPrivateKey) -> DkimSigner:
    return DkimSigner("example.com", "mo2025", pem(private_key, serialization.PrivateFormat.PKCS8))


def dns_for(signer: DkimSigner) -> Callable[..., bytes | None]:
    """A resolver that knows only this signer's key record, as a zone would publish it."""

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        if name.decode().rstrip(".") == signer.dns_name:
            return signer.dns_record().encode()
        return None

    return dnsfunc


@pytest.fixture
def message() -> bytes:
    compiled = CompiledMessage.compile(
        subject="Hola {{ first_name }} — ¿hablamos?",
        html="<p>Hi {{ name }}</p>",
        text="Hi {{ name }}",
        from_email="sales@example.com",
        from_name="Acme Sales",
        reply_to="replies@example.com",
        postal_address="Acme, 1 Main St, Springfield",
        bounce_domain="bounces.example.com",
    )
    token = make_token(email="ana@example.org", message_id=7, campaign_id=1)
    return compiled.render({"email": "ana@example.org", "name": "Ana Núñez"}, message_pk=7, unsubscribe_token=token).data


def signature_tags(signed: bytes) -> dict[str, str]:
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    match = re.match(r"DKIM-Signature:(.*?)\r\n(?=\S)", header, re.S)
    assert match is not None
    value = re.sub(r"\s+", "", match.group(1))
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


def test_a_signed_message_verifies(signer: DkimSigner, message: bytes) -> None:
    signed = signer.sign(message)
    assert signed.startswith(b"DKIM-Signature: ")
    assert signed.endswith(message)
    assert dkim.verify(signed, dnsfunc=dns_for(signer)) is True


def test_the_signature_uses_relaxed_canonicalization_and_rsa_sha256(signer: DkimSigner, message: bytes) -> None:
    tags = signature_tags(signer.sign(message))
    assert tags["a"] == "rsa-sha256"
    assert tags["c"] == "relaxed/relaxed"
    assert tags["d"] == "example.com"
    assert tags["s"] == "mo2025"


def test_the_signature_covers_the_headers_that_matter(signer: DkimSigner, message: bytes) -> None:
    signed_names = signature_tags(signer.sign(message))["h"].split(":")
    for name in [
        "from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post",
        "mime-version", "content-type", "reply-to",
    ]:
        assert name in signed_names
    # Over-signed: listed once more than present so a second copy cannot be added.
    assert signed_names.count("from") == 2
    assert signed_names.count("list-unsubscribe") == 2


def test_a_tampered_list_unsubscribe_fails_verification(signer: DkimSigner, message: bytes) -> None:
    signed = signer.sign(message)
    tampered = re.sub(rb"List-Unsubscribe: <http://[^>]+>", b"List-Unsubscribe: <https://evil.example/u/x/>", signed)
    assert tampered != signed
    assert dkim.verify(tampered, dnsfunc=dns_for(signer)) is False


def test_an_added_list_unsubscribe_header_fails_verification(signer: DkimSigner, message: bytes) -> None:
    signed = signer.sign(message)
    head, body = signed.split(b"\r\n\r\n", 1)
    tampered = head + b"\r\nList-Unsubscribe: <https://evil.example/u/x/>\r\n\r\n" + body
    assert dkim.verify(tampered, dnsfunc=dns_for(signer)) is False


def test_a_tampered_body_fails_verification(signer: DkimSigner, message: bytes) -> None:
    signed = signer.sign(message)
    assert dkim.verify(signed.replace(b"Hi Ana", b"Hi Bob"), dnsfunc=dns_for(signer)) is False


def test_a_signature_checked_against_another_key_fails(signer: DkimSigner, message: bytes) -> None:
    other = DkimSigner("example.com", "mo2025", pem(rsa.generate_private_key(public_exponent=65537, key_size=1024), serialization.PrivateFormat.PKCS8))
    assert dkim.verify(signer.sign(message), dnsfunc=dns_for(other)) is False


def test_the_output_is_byte_for_byte_what_dkimpy_signs(private_key: rsa.RSAPrivateKey, message: bytes) -> None:
    # Our signer hands only the RSA step to OpenSSL; PKCS#1 v1.5 is deterministic, so
    # with the clock frozen (t=) it must match dkimpy's own pure-Python result.
    pkcs1 = pem(private_key, serialization.PrivateFormat.TraditionalOpenSSL)
    signer = DkimSigner("example.com", "mo2025", pkcs1)
    with time_machine.travel(datetime(2025, 5, 1, 12, 0, tzinfo=UTC), tick=False):
        ours = signer.sign(message)
        reference = dkim.sign(
            message,
            b"mo2025",
            b"example.com",
            pkcs1,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=signer.headers_to_sign(message),
        )
    assert ours == reference + message


def test_pkcs1_and_pkcs8_keys_are_both_accepted(private_key: rsa.RSAPrivateKey, message: bytes) -> None:
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        signer = DkimSigner("example.com", "mo2025", pem(private_key, fmt).decode())
        assert dkim.verify(signer.sign(message), dnsfunc=dns_for(signer)) is True


def test_keys_that_cannot_sign_rsa_sha256_are_refused() -> None:
    with pytest.raises(ValueError, match="RSA"):
        DkimSigner("example.com", "s", pem(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.PKCS8))
    with pytest.raises(ValueError, match="PEM"):
        DkimSigner("example.com", "s", b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="1024"):
        DkimSigner("example.com", "s", pem(rsa.generate_private_key(public_exponent=65537, key_size=512), serialization.PrivateFormat.PKCS8))


def test_the_dns_record_names_the_key(signer: DkimSigner) -> None:
    assert signer.dns_name == "mo2025._domainkey.example.com"
    assert signer.dns_record().startswith("v=DKIM1; k=rsa; p=MII")


@pytest.fixture
def key_file(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem(private_key, serialization.PrivateFormat.PKCS8))
    return path


def configure(settings: SettingsWrapper, **values: str) -> None:
    settings.MAILOPS = {**settings.MAILOPS, **values}


def test_settings_give_a_signer_for_the_sender_domain_and_its_subdomains(settings: SettingsWrapper, key_file: Path, message: bytes) -> None:
    configure(settings, SENDER_DOMAIN="example.com", DKIM_SELECTOR="mo2025", DKIM_PRIVATE_KEY_FILE=str(key_file))
    signer = signer_from_settings("Example.COM")
    assert signer is not None
    assert dkim.verify(signer.sign(message), dnsfunc=dns_for(signer)) is True
    sub = signer_from_settings("news.example.com")
    assert sub is not None and sub.domain == "example.com"


def test_settings_give_no_signer_for_other_domains_or_when_unconfigured(settings: SettingsWrapper, key_file: Path) -> None:
    configure(settings, SENDER_DOMAIN="example.com", DKIM_SELECTOR="mo2025", DKIM_PRIVATE_KEY_FILE=str(key_file))
    assert signer_from_settings("example.org") is None
    assert signer_from_settings("notexample.com") is None
    configure(settings, SENDER_DOMAIN="")
    assert signer_from_settings("example.com") is None
    configure(settings, SENDER_DOMAIN="example.com", DKIM_SELECTOR="")
    assert signer_from_settings("example.com") is None


def test_a_configured_but_missing_key_file_is_an_error(settings: SettingsWrapper, tmp_path: Path) -> None:
    configure(settings, SENDER_DOMAIN="example.com", DKIM_SELECTOR="mo2025", DKIM_PRIVATE_KEY_FILE=str(tmp_path / "absent.pem"))
    with pytest.raises(ImproperlyConfigured, match="absent.pem"):
        signer_from_settings("example.com")
