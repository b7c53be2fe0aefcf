"""What every rule shares: the rule types, and checks that both tiers use.

A rule is a plain function over a resource's type and inputs (or over every
resource of the stack) that returns messages; ``pack.py`` wraps rules into
CrossGuard policies. Inputs arrive as the engine sends them to a policy pack:
camelCase keys, numbers as floats, secrets already unwrapped, mappings and
sequences that may be read-only proxies rather than ``dict`` and ``list``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Props = Mapping[str, Any]
Config = Mapping[str, Any]


class Enforcement(StrEnum):
    """``mandatory`` blocks ``preview``/``up``; ``advisory`` prints a warning."""

    MANDATORY = "mandatory"
    ADVISORY = "advisory"


@dataclass(frozen=True)
class StackResource:
    """One resource of the stack, as a stack policy sees it."""

    type: str
    name: str
    props: Props
    urn: str = ""


@dataclass(frozen=True)
class Finding:
    """A stack rule's violation; ``urn`` names the offending resource, if one."""

    message: str
    urn: str | None = None


def _defaults(schema: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {key: prop["default"] for key, prop in schema.items() if "default" in prop}


@dataclass(frozen=True)
class ResourceRule:
    """A check of one resource. ``applies`` picks the resource types it reads;
    ``config`` is the JSON schema of its settings, each with a default."""

    name: str
    description: str
    enforcement: Enforcement
    applies: Callable[[str], bool]
    check: Callable[[str, Props, Config], list[str]]
    config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def validate(self, resource_type: str, props: Props, config: Config | None = None) -> list[str]:
        if not self.applies(resource_type):
            return []
        return self.check(resource_type, props, {**_defaults(self.config), **(config or {})})


@dataclass(frozen=True)
class StackRule:
    """A check that spans resources (one resource needs another)."""

    name: str
    description: str
    enforcement: Enforcement
    check: Callable[[Sequence[StackResource], Config], list[Finding]]
    config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def validate(self, resources: Sequence[StackResource], config: Config | None = None) -> list[Finding]:
        return self.check(resources, {**_defaults(self.config), **(config or {})})


Rule = ResourceRule | StackRule


# -- reading inputs ------------------------------------------------------


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (absent or unexpected)."""
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> list[Any]:
    """``value`` as a list if it is a sequence (not a string), else empty."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    return []


def strings(value: Any) -> list[str]:
    return [v for v in items(value) if isinstance(v, str)]


def dig(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...``, or None where a level is missing."""
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def nonempty(value: Any) -> bool:
    """A quantity or setting that is really given: not None, "" or 0."""
    return value not in (None, "", 0)


def type_is(*types: str) -> Callable[[str], bool]:
    wanted = frozenset(types)
    return lambda resource_type: resource_type in wanted


# -- images --------------------------------------------------------------

IMAGE_ID_RE = re.compile(r"^sha256:[0-9a-f]{12,64}$")


def image_pin_problem(image: Any) -> str | None:
    """Why ``image`` is not pinned, or None when it is: a digest, an image ID,
    or a tag other than ``latest``."""
    if not isinstance(image, str) or not image.strip():
        return "has no image"
    ref = image.strip()
    if IMAGE_ID_RE.match(ref) or "@sha256:" in ref:
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {ref} has no tag (it means latest); pin a version tag or a digest"
    tag = last.rsplit(":", 1)[1]
    if tag.lower() == "latest":
        return f"image {ref} uses the latest tag; pin a version tag or a digest"
    return None


# -- environment variables -------------------------------------------------

# Words that make a variable a credential when they are a whole word of its
# name (or end one, as in DBPASSWORD).
_SECRET_WORD_RE = re.compile(
    r"^(PWD|PASS|KEYS?|APIKEYS?|CREDENTIALS?|PASSPHRASE)$|(PASSWORD|PASSWD|SECRETS?|TOKENS?|APIKEY)$"
)
# A last word that makes the variable a reference to a credential, not one.
_REFERENCE_WORDS = frozenset({"FILE", "FILES", "PATH", "DIR", "NAME", "REF", "TYPE"})
_PASSWORD_RE = re.compile(r"(PASSWORD|PASSWD|PASSPHRASE)$|^(PWD|PASS)$")


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^A-Z0-9]+", name.upper()) if w]


def is_secret_name(name: str) -> bool:
    """A variable that holds a credential itself (``REDIS_PASSWORD``,
    ``API_TOKEN``, ``AWS_SECRET_ACCESS_KEY``), not one that points at a file
    holding it (``REDIS_PASSWORD_FILE``)."""
    words = _words(name)
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    return any(_SECRET_WORD_RE.search(w) for w in words)


def is_password_name(name: str) -> bool:
    words = _words(name)
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    return any(_PASSWORD_RE.search(w) for w in words)


# Credentials images ship with, by variable.
DEFAULT_CREDENTIALS: Mapping[str, frozenset[str]] = {
    "MINIO_ROOT_USER": frozenset({"minioadmin"}),
    "MINIO_ROOT_PASSWORD": frozenset({"minioadmin"}),
    "MINIO_ACCESS_KEY": frozenset({"minioadmin"}),
    "MINIO_SECRET_KEY": frozenset({"minioadmin"}),
    "GF_SECURITY_ADMIN_PASSWORD": frozenset({"admin"}),
    "RABBITMQ_DEFAULT_USER": frozenset({"guest"}),
    "RABBITMQ_DEFAULT_PASS": frozenset({"guest"}),
    "POSTGRES_PASSWORD": frozenset({"postgres"}),
    "MYSQL_ROOT_PASSWORD": frozenset({"root"}),
}
# Switches that turn authentication off.
INSECURE_SWITCHES: Mapping[str, frozenset[str]] = {
    "ALLOW_EMPTY_PASSWORD": frozenset({"yes", "true", "1"}),
    "MYSQL_ALLOW_EMPTY_PASSWORD": frozenset({"yes", "true", "1"}),
    "POSTGRES_HOST_AUTH_METHOD": frozenset({"trust"}),
}
# Passwords nobody should ship, whatever the variable.
WEAK_PASSWORDS = frozenset(
    {"admin", "password", "changeme", "changeit", "secret", "root", "minioadmin", "guest", "default"}
    | {"123456", "12345678", "letmein", "pass"}
)


def default_credential_problem(name: str, value: str) -> str | None:
    """Why ``name=value`` is a default or missing credential, or None.
    Messages name the variable, never the value."""
    key = name.upper()
    if value in DEFAULT_CREDENTIALS.get(key, frozenset()):
        return f"env {name} is set to the image's well-known default credential"
    if value.strip().lower() in INSECURE_SWITCHES.get(key, frozenset()):
        return f"env {name} turns authentication off"
    if is_password_name(name):
        if value == "":
            return f"env {name} is empty, which leaves the service without a password"
        if value.strip().lower() in WEAK_PASSWORDS:
            return f"env {name} is set to a well-known default password"
    return None


# -- label selectors -----------------------------------------------------


def selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    """Whether a LabelSelector (``matchLabels``/``matchExpressions``) selects
    ``labels``. An empty selector selects everything."""
    sel = mapping(selector)
    for key, value in mapping(sel.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for entry in items(sel.get("matchExpressions")):
        expr = mapping(entry)
        label, operator, values = str(expr.get("key")), expr.get("operator"), strings(expr.get("values"))
        present = label in labels
        if operator == "In" and not (present and labels[label] in values):
            return False
        if operator == "NotIn" and present and labels[label] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def map_selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    """A Service-style selector: a plain map, every pair must match."""
    return all(labels.get(k) == v for k, v in mapping(selector).items())


def unique(messages: Iterator[str] | list[str]) -> list[str]:
    """Messages in order, each once."""
    return list(dict.fromkeys(messages))
