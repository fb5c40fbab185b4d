from __future__ import annotations

from django.core.exceptions import ValidationError

from vault.age import AgeError, parse_recipient

#: Room for any age recipient a person may give: a hybrid post-quantum one
#: (age1pq1...) is 1,959 characters, an X25519 one 62. Kept under PostgreSQL's
#: B-tree entry limit (about 2,700 bytes) because NotaryRecipient.public_key is unique.
AGE_RECIPIENT_MAX_LENGTH = 2200


def validate_age_recipient(value: str) -> None:
    """Accept a well-formed age recipient: X25519 (``age1...``) or hybrid
    post-quantum (``age1pq1...``, ML-KEM-768 + X25519)."""
    if value.strip().upper().startswith("AGE-SECRET-KEY-"):
        # Never echo any part of a private key back, not even in an error.
        raise ValidationError(
            "That is a private key (AGE-SECRET-KEY-…): keep it secret, and register the "
            "public key starting with age1 (or age1pq1) that age-keygen printed instead.",
            code="private_key_given",
        )
    try:
        parse_recipient(value)
    except AgeError as error:
        raise ValidationError(
            "%(value)s is not an age recipient (age1... or age1pq1...): %(reason)s",
            params={"value": value[:20], "reason": error},
            code="invalid_age_recipient",
        ) from error
