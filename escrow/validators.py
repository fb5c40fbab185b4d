from __future__ import annotations

from django.core.exceptions import ValidationError

from vault.age import AgeError, X25519Recipient


def validate_age_recipient(value: str) -> None:
    """Accept only a well-formed X25519 age recipient (``age1...``)."""
    if value.strip().upper().startswith("AGE-SECRET-KEY-"):
        # Never echo any part of a private key back, not even in an error.
        raise ValidationError(
            "That is a private key (AGE-SECRET-KEY-…): keep it secret, and register the "
            "public key starting with age1 that age-keygen printed instead.",
            code="private_key_given",
        )
    try:
        X25519Recipient.from_string(value)
    except AgeError as error:
        raise ValidationError(
            "%(value)s is not an age recipient (age1...): %(reason)s",
            params={"value": value[:20], "reason": error},
            code="invalid_age_recipient",
        ) from error
