"""Reading JSON as a strict parser does, where ``NaN`` and ``Infinity`` are not JSON."""

from __future__ import annotations

import json


def strict_json(text: str) -> object:
    """The parsed document; a ``NaN``, ``Infinity`` or ``-Infinity`` token is a ValueError."""

    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)
