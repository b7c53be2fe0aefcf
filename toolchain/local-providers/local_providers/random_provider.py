"""``random:index/randomPassword:RandomPassword``, with the inputs and
defaults of pulumi-random: length, character classes (``upper``, ``lower``,
``numeric``, ``special``), minimum counts per class, ``overrideSpecial`` and
``keepers``. Any change of input makes a new password, as upstream does.
``bcryptHash`` is not computed (no bcrypt here); it is left empty.
"""

from __future__ import annotations

import secrets
import string

from local_providers.server import Props, ProviderError, ResourceKind

DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"


def generate(inputs: Props) -> str:
    length = int(inputs["length"])
    classes: list[tuple[str, int]] = []
    if inputs.get("upper", True):
        classes.append((string.ascii_uppercase, int(inputs.get("minUpper") or 0)))
    if inputs.get("lower", True):
        classes.append((string.ascii_lowercase, int(inputs.get("minLower") or 0)))
    if inputs.get("numeric", inputs.get("number", True)):
        classes.append((string.digits, int(inputs.get("minNumeric") or 0)))
    if inputs.get("special", True):
        special = inputs.get("overrideSpecial") or DEFAULT_SPECIAL
        classes.append((special, int(inputs.get("minSpecial") or 0)))
    if not classes:
        raise ProviderError("RandomPassword: every character class is switched off")
    required = sum(n for _, n in classes)
    if required > length:
        raise ProviderError(f"RandomPassword: length {length} is below the minimum counts' sum {required}")
    rng = secrets.SystemRandom()
    chars = [rng.choice(alphabet) for alphabet, n in classes for _ in range(n)]
    everything = "".join(alphabet for alphabet, _ in classes)
    chars += [rng.choice(everything) for _ in range(length - required)]
    rng.shuffle(chars)
    return "".join(chars)


class RandomPassword(ResourceKind):
    token = "random:index/randomPassword:RandomPassword"

    def check(self, olds: Props, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        length = news.get("length")
        if not isinstance(length, (int, float)) or int(length) < 1:
            return news, [("length", "length must be a number of at least 1")]
        return news, []

    def create(self, inputs: Props, timeout: float) -> tuple[str, Props]:
        return "none", {**inputs, "result": generate(inputs), "bcryptHash": ""}

    def read(self, id_: str, state: Props, inputs: Props) -> tuple[str, Props] | None:
        return id_, state
