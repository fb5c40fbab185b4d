"""Bech32 (BIP 173) as age uses it: no length limit, checksum over the lowercase form."""

from __future__ import annotations

from collections.abc import Iterable

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX = {char: index for index, char in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_CHECKSUM_LENGTH = 6


class Bech32Error(ValueError):
    """The string is not valid Bech32."""


def _polymod(values: Iterable[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_GENERATOR):
            if (top >> bit) & 1:
                checksum ^= generator
    return checksum


def _expand_hrp(hrp: str) -> list[int]:
    return [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp]


def _convert_bits(data: Iterable[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    accumulator = 0
    bit_count = 0
    result: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        accumulator = (accumulator << from_bits) | value
        bit_count += from_bits
        while bit_count >= to_bits:
            bit_count -= to_bits
            result.append((accumulator >> bit_count) & max_value)
    if pad:
        if bit_count:
            result.append((accumulator << (to_bits - bit_count)) & max_value)
    # Decoding must not accept a whole spare group or non-zero padding bits,
    # otherwise several strings would decode to the same key.
    elif bit_count >= from_bits or (accumulator << (to_bits - bit_count)) & max_value:
        raise Bech32Error("invalid padding in data part")
    return result


def encode(hrp: str, data: bytes) -> str:
    """Encode ``data`` with human-readable part ``hrp`` (returned in lowercase)."""
    hrp = hrp.lower()
    values = _convert_bits(data, 8, 5, pad=True)
    polymod = _polymod([*_expand_hrp(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - index)) & 31 for index in range(_CHECKSUM_LENGTH)]
    return hrp + "1" + "".join(_CHARSET[value] for value in values + checksum)


def decode(text: str) -> tuple[str, bytes]:
    """Decode a Bech32 string into its lowercase human-readable part and data bytes."""
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("mixed case")
    if any(not 33 <= ord(char) <= 126 for char in text):
        raise Bech32Error("invalid character")
    text = text.lower()
    separator = text.rfind("1")
    if separator < 1 or separator + _CHECKSUM_LENGTH + 1 > len(text):
        raise Bech32Error("separator missing or misplaced")
    hrp = text[:separator]
    try:
        values = [_CHARSET_INDEX[char] for char in text[separator + 1 :]]
    except KeyError:
        raise Bech32Error("invalid data character") from None
    if _polymod(_expand_hrp(hrp) + values) != 1:
        raise Bech32Error("invalid checksum")
    data = _convert_bits(values[:-_CHECKSUM_LENGTH], 5, 8, pad=False)
    return hrp, bytes(data)
