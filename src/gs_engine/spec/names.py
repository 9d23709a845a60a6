"""Name syntax: DNS-1123 labels, Kubernetes label keys and values, hostnames, Python modules."""

from __future__ import annotations

import re

from gs_engine.errors import InvalidInput, Problem

DNS_LABEL_MAX = 63
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_WILDCARD_HOST = "*."
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def dns_label_problem(value: str) -> str | None:
    """Why `value` is not a DNS-1123 label, or None when it is one."""
    if not value:
        return "must not be empty"
    if len(value) > DNS_LABEL_MAX:
        return f"is {len(value)} characters long; the limit is {DNS_LABEL_MAX}"
    if DNS_LABEL.match(value):
        return None
    reasons = []
    if value != value.lower():
        reasons.append("has capital letters")
    if "_" in value:
        reasons.append("has '_'")
    if value[0] == "-" or value[-1] == "-":
        reasons.append("starts or ends with '-'")
    if any(not (c.isascii() and (c.isalnum() or c in "-_")) for c in value):
        reasons.append("has characters other than letters, digits and '-'")
    return " and ".join(reasons) if reasons else "may hold only lowercase letters, digits and '-'"


def dns_label_fix(value: str) -> str:
    """A suggestion that fits, derived from the refused value where possible."""
    suggestion = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[:DNS_LABEL_MAX].strip("-")
    example = suggestion if suggestion and DNS_LABEL.match(suggestion) else "face-detect"
    return f"use lowercase letters, digits and '-' (at most {DNS_LABEL_MAX}), e.g. '{example}'"


def validate_dns_label(value: str, field: str) -> None:
    """Raise InvalidInput naming `field` unless `value` is a DNS-1123 label (e.g. a path parameter)."""
    reason = dns_label_problem(value) if isinstance(value, str) else "must be a string"
    if reason is None:
        return
    message = f"{value!r} is not a valid name: it {reason}"
    fix = dns_label_fix(value if isinstance(value, str) else "")
    raise InvalidInput(message, fix=fix, field=field, problems=[Problem(field, message, fix)])


def dns_subdomain_problem(value: str) -> str | None:
    """Why `value` is not a DNS-1123 subdomain (dot-separated labels, at most 253), or None."""
    if not value:
        return "must not be empty"
    if len(value) > 253:
        return f"is {len(value)} characters long; the limit is 253"
    for part in value.split("."):
        reason = dns_label_problem(part)
        if reason is not None:
            return f"has the part {part!r} that {reason}"
    return None


def label_key_problem(key: str) -> str | None:
    """Kubernetes label key syntax: an optional DNS subdomain prefix and '/', then a name."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        reason = dns_subdomain_problem(prefix)
        if reason is not None:
            return f"has a prefix {prefix!r} that {reason}"
    if not name:
        return "has an empty name"
    if len(name) > DNS_LABEL_MAX:
        return f"has a name {len(name)} characters long; the limit is {DNS_LABEL_MAX}"
    if not _LABEL_NAME.match(name):
        return "may hold only letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    return None


def label_value_problem(value: str) -> str | None:
    """Kubernetes label value syntax: empty, or a name of at most 63 characters."""
    if value == "":
        return None
    if len(value) > DNS_LABEL_MAX:
        return f"is {len(value)} characters long; the limit is {DNS_LABEL_MAX}"
    if not _LABEL_NAME.match(value):
        return "may hold only letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    return None


def hostname_problem(value: str) -> str | None:
    """A hostname for routing: a DNS subdomain, optionally with a leading '*.' wildcard."""
    name = value[len(_WILDCARD_HOST) :] if value.startswith(_WILDCARD_HOST) else value
    if value != value.lower():
        return "has capital letters"
    return dns_subdomain_problem(name)


def module_name_problem(value: str) -> str | None:
    """A dotted Python module name such as 'numpy' or 'sklearn.linear_model'."""
    if _MODULE.match(value):
        return None
    return "is not a Python module name"
