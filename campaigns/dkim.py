"""DKIM signing of rendered messages (dkimpy, relaxed/relaxed, rsa-sha256).

RFC 8058 one-click unsubscribe only counts when the DKIM signature covers both
List-Unsubscribe and List-Unsubscribe-Post, so those are always signed.

dkimpy does the RSA step in pure Python (about 14 ms per message with a 2048-bit key,
so 70 messages/s per core), which would throttle the whole pipeline. ``_FastDKIM``
keeps all of dkimpy's parsing, canonicalization, tag building and folding, and hands
only the PKCS#1 v1.5 signature of the header hash to OpenSSL via ``cryptography``.
The signature is deterministic, so the output is byte-for-byte what ``dkim.sign``
produces; a test holds it to that.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import dkim as dkimpy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Signed when present. Those in OVERSIGNED are listed one extra time: a name in h= with
# no matching header hashes as empty, so anyone who adds a second copy later (a
# second From, a forged List-Unsubscribe) breaks the signature.
SIGNED_HEADERS = (
    "from", "to", "cc", "reply-to", "subject", "date", "message-id", "mime-version",
    "content-type", "content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post",
    "x-mailops-message", "feedback-id",
)
OVERSIGNED = frozenset(
    {"from", "to", "cc", "reply-to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"}
)
_HEADER_NAME = re.compile(rb"^([!-9;-~]+):", re.MULTILINE)


def _pkcs1_pem(private_key_pem: bytes) -> tuple[bytes, rsa.RSAPrivateKey]:
    # dkimpy only reads PKCS#1 ("BEGIN RSA PRIVATE KEY"); openssl genpkey writes PKCS#8.
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"DKIM private key is not an unencrypted PEM key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("DKIM private key must be an RSA key (rsa-sha256)")
    if key.key_size < 1024:
        raise ValueError(f"DKIM RSA key has {key.key_size} bits; receivers ignore keys under 1024 (use 2048)")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return pem, key


class _FastDKIM(dkimpy.DKIM):
    def __init__(self, message: bytes, key: rsa.RSAPrivateKey) -> None:
        super().__init__(message, signature_algorithm=b"rsa-sha256")
        self._rsa_key = key

    # Mirrors dkimpy 1.1.8 DKIM.gen_header for rsa-sha256 without "standardize";
    # only the line computing ``signature`` differs.
    def gen_header(
        self,
        fields: list[tuple[bytes, bytes]],
        include_headers: tuple[bytes, ...],
        canon_policy: Any,
        header_name: bytes,
        pk: object,
        standardize: bool = False,
    ) -> bytes:
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkimpy.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkimpy.RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        hasher = self.hasher()
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkimpy.hash_headers(hasher, canon_policy, headers, include_headers, header, dict(fields))
        signature = self._rsa_key.sign(hasher.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        index = next(i for i, (tag, _value) in enumerate(fields) if tag == b"b")
        fields[index] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        return dkimpy.fold(header_value, namelen=len(header_name), linesep=self.linesep)


class DkimSigner:
    def __init__(self, domain: str, selector: str, private_key_pem: bytes | str) -> None:
        if isinstance(private_key_pem, str):
            private_key_pem = private_key_pem.encode("ascii")
        self.domain = domain.strip().lower().rstrip(".")
        self.selector = selector.strip()
        if not self.domain or not self.selector:
            raise ValueError("DKIM signing needs both a domain and a selector")
        self._pem, self._key = _pkcs1_pem(private_key_pem)
        key = self._key
        self._public_der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def dns_record(self) -> str:
        """The TXT record to publish at ``dns_name``."""
        return "v=DKIM1; k=rsa; p=" + base64.b64encode(self._public_der).decode("ascii")

    def headers_to_sign(self, data: bytes) -> list[bytes]:
        head = data.split(b"\r\n\r\n", 1)[0]
        present = {name.lower() for name in _HEADER_NAME.findall(head)}
        chosen = [name.encode("ascii") for name in SIGNED_HEADERS if name.encode("ascii") in present]
        if b"from" not in chosen:
            raise ValueError("message has no From header; DKIM requires signing From")
        return chosen + [name for name in chosen if name.decode("ascii") in OVERSIGNED]

    def sign(self, data: bytes) -> bytes:
        """``data`` with a DKIM-Signature header prepended."""
        signature = _FastDKIM(data, self._key).sign(
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self._pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=self.headers_to_sign(data),
        )
        return signature + data


def signer_from_settings(domain: str) -> DkimSigner | None:
    """A signer for mail From ``domain`` when it is (a subdomain of) the configured SENDER_DOMAIN.

    Signing with d=SENDER_DOMAIN for a subdomain still aligns under DMARC's relaxed
    mode. A configured but unreadable key is an error, not a silent "don't sign".
    """
    config = settings.MAILOPS
    sender = config.get("SENDER_DOMAIN", "").strip().lower().rstrip(".")
    selector = config.get("DKIM_SELECTOR", "").strip()
    key_file = config.get("DKIM_PRIVATE_KEY_FILE", "").strip()
    if not (sender and selector and key_file):
        return None
    domain = domain.strip().lower().rstrip(".")
    if domain != sender and not domain.endswith("." + sender):
        return None
    try:
        pem = Path(key_file).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"DKIM_PRIVATE_KEY_FILE {key_file!r} cannot be read: {exc}") from exc
    try:
        return DkimSigner(sender, selector, pem)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DKIM_PRIVATE_KEY_FILE {key_file!r}: {exc}") from exc
