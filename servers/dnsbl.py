"""DNS lookups that protect sending reputation: DNS blocklists and sender-domain auth.

Pure functions over a dnspython resolver; nothing here touches the database. The
blocklist sweep and the recommendations call these and decide what to pause or report.

DNSBL return codes follow the convention Spamhaus documents and other lists share:
an A record in 127.0.0.0/24 is a listing, 127.255.255.0/24 means the query itself was
refused or malformed (never a listing), and NXDOMAIN means not listed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

import dns.exception
import dns.nameserver
import dns.resolver

ZoneStatus = Literal["listed", "clear", "error", "unknown"]

DEFAULT_ZONES = ["zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net"]

LISTING_NETWORK = ipaddress.IPv4Network("127.0.0.0/24")
QUERY_ERROR_NETWORK = ipaddress.IPv4Network("127.255.255.0/24")

_USE_OWN_RESOLVER = (
    "use your own recursive resolver; public resolvers like 8.8.8.8 are refused by Spamhaus. "
    "Point DNS_RESOLVER at a resolver you run (for example unbound on 127.0.0.1), "
    "or use a Spamhaus Data Query Service (DQS) zone"
)

# Spamhaus' documented query-error codes, each with what went wrong and how to fix it.
QUERY_ERROR_CODES: dict[str, tuple[str, str]] = {
    "127.255.255.252": (
        "typing error in the DNSBL name",
        "check the zone's spelling in DNSBL_ZONES (for example zen.spamhaus.org)",
    ),
    "127.255.255.254": (
        "query via a public or open resolver refused (or the resolver has generic rDNS)",
        _USE_OWN_RESOLVER,
    ),
    "127.255.255.255": (
        "excessive number of queries from this resolver",
        "stop sharing a resolver with other users: " + _USE_OWN_RESOLVER,
    ),
}


@dataclass(frozen=True)
class ZoneResult:
    zone: str
    status: ZoneStatus
    codes: list[str] = field(default_factory=list)
    reason: str = ""
    error: str = ""

    @property
    def listed(self) -> bool:
        return self.status == "listed"


@dataclass(frozen=True)
class DomainAuth:
    spf: str | None
    dkim: str | None
    dmarc: str | None
    problems: list[str] = field(default_factory=list)


class _LookupFailed(Exception):
    """The resolver gave no usable answer, so presence or absence is unknown."""


def make_resolver(*, nameserver: str, port: int, timeout: float) -> dns.resolver.Resolver:
    """A stub resolver aimed at `nameserver`:`port`, or at the system's resolvers when
    `nameserver` is empty. `timeout` bounds each whole lookup, retries included."""
    if nameserver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(nameserver, port)]
    else:
        resolver = dns.resolver.Resolver(configure=True)
    resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = timeout
    # A SERVFAIL from a blocklist is an answer worth reporting, not something to hammer.
    resolver.retry_servfail = False
    resolver.search = []
    return resolver


def resolver_from_settings() -> dns.resolver.Resolver:
    from django.conf import settings

    config = settings.MAILOPS
    return make_resolver(
        nameserver=config.get("DNS_RESOLVER", ""),
        port=int(config.get("DNS_RESOLVER_PORT", 53)),
        timeout=float(config.get("DNS_TIMEOUT_SECONDS", 3.0)),
    )


def zones_from_settings() -> list[str]:
    from django.conf import settings

    return list(settings.MAILOPS.get("DNSBL_ZONES", DEFAULT_ZONES))


def _clean_zone(zone: str) -> str:
    cleaned = zone.strip().rstrip(".").lower()
    if not cleaned:
        raise ValueError("DNSBL zone is empty; remove the blank entry from DNSBL_ZONES")
    return cleaned


def reversed_name(ip: str, zone: str) -> str:
    """The DNSBL query name: reversed octets for IPv4, reversed nibbles for IPv6."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        raise ValueError(f"{ip!r} is not an IP address; a DNSBL check needs the server's egress IP") from None
    # An IPv4-mapped IPv6 address is an IPv4 sender; blocklists list it under IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address):
        labels = reversed(str(address).split("."))
    else:
        labels = reversed(address.exploded.replace(":", ""))
    return ".".join(labels) + "." + _clean_zone(zone)


def check_ip(ip: str, zones: list[str], *, resolver: dns.resolver.Resolver) -> list[ZoneResult]:
    return [_check_zone(ip, _clean_zone(zone), resolver) for zone in zones]


def _check_zone(ip: str, zone: str, resolver: dns.resolver.Resolver) -> ZoneResult:
    qname = reversed_name(ip, zone)
    try:
        answer = resolver.resolve(qname, "A", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return ZoneResult(zone=zone, status="clear")
    except (dns.exception.DNSException, OSError) as exc:
        return ZoneResult(zone=zone, status="unknown", error=_describe_failure(exc, resolver))

    codes = sorted({rdata.address for rdata in answer}, key=ipaddress.IPv4Address)
    addresses = [ipaddress.IPv4Address(code) for code in codes]

    # A refusal code anywhere in the answer means the list did not really look the IP up,
    # so nothing else in the answer can be trusted as a listing.
    refusals = [code for code, addr in zip(codes, addresses) if addr in QUERY_ERROR_NETWORK]
    if refusals:
        return ZoneResult(zone=zone, status="error", codes=codes, error=_explain_refusal(zone, refusals[0]))

    unexpected = [code for code, addr in zip(codes, addresses) if addr not in LISTING_NETWORK]
    if unexpected:
        return ZoneResult(zone=zone, status="error", codes=codes, error=_explain_unexpected(zone, unexpected))

    return ZoneResult(zone=zone, status="listed", codes=codes, reason=_listing_reason(qname, resolver))


def _listing_reason(qname: str, resolver: dns.resolver.Resolver) -> str:
    # The TXT record only explains the listing; failing to fetch it must not hide the listing.
    try:
        return "; ".join(sorted(_txt_strings(qname, resolver)))
    except _LookupFailed:
        return ""


def _explain_refusal(zone: str, code: str) -> str:
    meaning, fix = QUERY_ERROR_CODES.get(
        code,
        ("the list refused or could not process the query", _USE_OWN_RESOLVER + ", and check the zone's usage terms"),
    )
    return f"{zone} answered {code}: {meaning}. This is a query error, not a listing. Fix: {fix}."


def _explain_unexpected(zone: str, codes: list[str]) -> str:
    return (
        f"{zone} answered {', '.join(codes)}, which is not a blocklist return code (listings are 127.0.0.x). "
        "The zone may be misspelt, retired (retired zones sometimes answer every query) or not an IP "
        "blocklist. Fix: check the zone name in DNSBL_ZONES or remove it."
    )


def _describe_failure(exc: BaseException, resolver: dns.resolver.Resolver) -> str:
    if isinstance(exc, dns.exception.Timeout):
        return (
            f"no answer from the DNS resolver within {resolver.lifetime:g}s, so the result is unknown; "
            "check that DNS_RESOLVER is reachable or raise DNS_TIMEOUT_SECONDS"
        )
    if isinstance(exc, dns.resolver.NoNameservers):
        return f"every nameserver failed to answer (SERVFAIL or REFUSED), so the result is unknown: {exc}"
    if isinstance(exc, dns.resolver.NoResolverConfiguration):
        return "no DNS resolver is configured on this host; set DNS_RESOLVER"
    return f"DNS lookup failed, so the result is unknown: {exc.__class__.__name__}: {exc}"


def _txt_strings(name: str, resolver: dns.resolver.Resolver) -> list[str]:
    """Each TXT record at `name` as one string (its character-strings joined), or [] when
    the name or the type does not exist."""
    try:
        answer = resolver.resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, OSError) as exc:
        raise _LookupFailed(_describe_failure(exc, resolver)) from exc
    return [b"".join(rdata.strings).decode("utf-8", errors="replace") for rdata in answer]


_SPF = re.compile(r"^v=spf1(\s|$)", re.IGNORECASE)
_DMARC = re.compile(r"^v\s*=\s*DMARC1\s*(;|$)", re.IGNORECASE)


def _tags(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = re.sub(r"\s+", "", value) if key.strip().lower() == "p" else value.strip()
    return tags


def check_sender_domain(domain: str, *, dkim_selector: str, resolver: dns.resolver.Resolver) -> DomainAuth:
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        raise ValueError("sender domain is empty; set MAILOPS_SENDER_DOMAIN to the domain you send from")
    problems: list[str] = []
    spf = _check_spf(domain, resolver, problems)
    dkim = _check_dkim(domain, dkim_selector.strip(), resolver, problems)
    dmarc = _check_dmarc(domain, resolver, problems)
    return DomainAuth(spf=spf, dkim=dkim, dmarc=dmarc, problems=problems)


def _check_spf(domain: str, resolver: dns.resolver.Resolver, problems: list[str]) -> str | None:
    try:
        records = [r for r in _txt_strings(domain, resolver) if _SPF.match(r.strip())]
    except _LookupFailed as exc:
        problems.append(f"Could not look up SPF for {domain}: {exc}.")
        return None
    if not records:
        problems.append(
            f'{domain} has no SPF record. Publish one TXT record such as "v=spf1 ip4:<each relay IP> -all" '
            "so receivers know which servers may send for it."
        )
        return None
    records = sorted(r.strip() for r in records)
    if len(records) > 1:
        problems.append(
            f"{domain} has {len(records)} SPF records; receivers treat more than one as a permanent error "
            'and SPF fails for every message. Merge them into a single "v=spf1 ..." record.'
        )
    if any(term.lower() in ("all", "+all") for record in records for term in record.split()[1:]):
        problems.append(
            f"The SPF record on {domain} allows every host on the internet ('+all'); end it with '-all' or '~all'."
        )
    return _joined(records)


def _joined(records: list[str]) -> str:
    # DNS returns records in no fixed order, so when several are published they are all
    # shown, sorted, one per line, rather than an arbitrary "first" one.
    return "\n".join(sorted(records))


def _check_dkim(domain: str, selector: str, resolver: dns.resolver.Resolver, problems: list[str]) -> str | None:
    if not selector:
        problems.append(
            "No DKIM selector is configured, so DKIM could not be checked; set DKIM_SELECTOR to the "
            "selector your signing key is published under."
        )
        return None
    name = f"{selector}._domainkey.{domain}"
    try:
        records = [r.strip() for r in _txt_strings(name, resolver) if "p" in _tags(r)]
    except _LookupFailed as exc:
        problems.append(f"Could not look up the DKIM key at {name}: {exc}.")
        return None
    if not records:
        problems.append(
            f'No DKIM key at {name}. Publish the public key there as a TXT record ("v=DKIM1; k=rsa; p=...").'
        )
        return None
    if len(records) > 1:
        problems.append(
            f"{name} has {len(records)} DKIM key records; receivers may pick either. Keep a single record."
        )
    if any(not _tags(record)["p"] for record in records):
        problems.append(f"The DKIM key at {name} is revoked (empty p=); publish the current public key.")
    return _joined(records)


def _check_dmarc(domain: str, resolver: dns.resolver.Resolver, problems: list[str]) -> str | None:
    name = f"_dmarc.{domain}"
    try:
        records = [r.strip() for r in _txt_strings(name, resolver) if _DMARC.match(r.strip())]
    except _LookupFailed as exc:
        problems.append(f"Could not look up DMARC at {name}: {exc}.")
        return None
    if not records:
        problems.append(
            f'{domain} has no DMARC record. Publish a TXT record at {name} such as "v=DMARC1; p=none; '
            f'rua=mailto:dmarc@{domain}" and tighten it later; Gmail and Yahoo require DMARC from bulk senders.'
        )
        return None
    if len(records) > 1:
        problems.append(
            f"{name} has {len(records)} DMARC records; receivers ignore DMARC when there is more than one. "
            "Keep a single record."
        )
    if len(records) > 1:
        # Receivers ignore DMARC entirely here; the policy checks below would only add noise.
        return _joined(records)
    record = records[0]
    policy = _tags(record).get("p", "").lower()
    if not policy:
        problems.append(
            f"The DMARC record at {name} has no p= tag, so receivers ignore it; add p=none, p=quarantine or p=reject."
        )
    elif policy == "none":
        problems.append(
            f"The DMARC policy for {domain} is p=none, which is weak: it only monitors and spoofed mail is still "
            "delivered. Move to p=quarantine, then p=reject, once reports show your legitimate mail passes."
        )
    return record
