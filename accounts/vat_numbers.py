"""VAT numbers as organisations give them: normalised and checked against the country."""

from __future__ import annotations

import re

# A VAT number is the country prefix (Greece uses EL) and 2 to 13 letters or digits.
_VAT_NUMBER = re.compile(r"^(?P<prefix>[A-Z]{2})(?P<body>[0-9A-Z+*]{2,13})$")


def normalise_vat_number(raw: str, *, country: str) -> str:
    """Upper-case, strip spaces, dots and dashes; check the prefix matches the country.

    Raises ValueError with a message for the form field."""
    cleaned = re.sub(r"[\s.\-]", "", raw).upper()
    if not cleaned:
        return ""
    match = _VAT_NUMBER.match(cleaned)
    if match is None:
        raise ValueError(
            "A VAT number is a two-letter country prefix and 2 to 13 letters or digits, "
            "e.g. NL123456789B01."
        )
    expected = "EL" if country == "GR" else country
    if match["prefix"] != expected:
        raise ValueError(f"A VAT number of a customer in {country} starts with {expected}.")
    return cleaned
