"""Recipient TLD → region, from the active configuration's editable rules."""

from __future__ import annotations


def region_for(email: str, rules: dict[str, str]) -> str:
    """The region of the longest rule matching the end of the recipient's domain; "" when none does."""
    if not rules:
        return ""
    domain = email.rpartition("@")[2].lower().rstrip(".")
    best, best_len = "", 0
    for suffix, region in rules.items():
        suffix = suffix.lower()
        if not suffix.startswith("."):
            suffix = "." + suffix
        if ("." + domain).endswith(suffix) and len(suffix) > best_len:
            best, best_len = region, len(suffix)
    return best


def validate_rules(rules: object) -> dict[str, str]:
    from mailops.errors import DomainError

    if not isinstance(rules, dict):
        raise DomainError('routing rules must be an object such as {".es": "EU"}', field="routingRules")
    clean: dict[str, str] = {}
    for suffix, region in rules.items():
        if not isinstance(suffix, str) or not isinstance(region, str) or not suffix.strip(". ") or not region.strip():
            raise DomainError(f"bad routing rule {suffix!r}: {region!r}; use \".tld\": \"REGION\"", field="routingRules")
        clean["." + suffix.strip(". ").lower()] = region.strip().upper()
    return clean
