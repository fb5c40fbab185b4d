"""Error hierarchy of the age implementation.

Each decryption failure class corresponds to one ``expect`` value of the C2SP
CCTV age test vectors, so callers (and the conformance test) can tell apart a
wrong key from a corrupted or forged file. Messages are one line and never
contain key material.
"""

from __future__ import annotations


class AgeError(Exception):
    """Base class of every error raised by this package."""


class NoIdentityMatchError(AgeError):
    """None of the given identities could unwrap the file key (CCTV ``no match``)."""


class HeaderMacError(AgeError):
    """The file key was unwrapped but the header MAC is wrong (CCTV ``HMAC failure``)."""


class HeaderError(AgeError):
    """The header is malformed or violates the spec (CCTV ``header failure``)."""


class PayloadError(AgeError):
    """The payload is truncated, forged, or has trailing data (CCTV ``payload failure``)."""


class ArmorError(AgeError):
    """The ASCII armor is malformed (CCTV ``armor failure``)."""


class KeyFormatError(AgeError, ValueError):
    """A recipient, identity, or identity file could not be parsed."""
