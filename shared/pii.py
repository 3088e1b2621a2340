"""Callers' personal data (个人信息): sealed at rest with AES-GCM, masked for display, pseudonymised for matching.

A sealed value is ``<kid>:<base64url(nonce ‖ ciphertext ‖ tag)>``; the key id names the key that sealed it, so
keys can rotate: the first key of a :class:`Keyring` seals, every key of it opens. The associated data binds a
sealed value to the record it belongs to, so a blob copied onto another record does not open.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared import jsontext
from shared.ids import random_bytes

# A fixed, publicly known key: the settings refuse it outside development.
DEVELOPMENT_KID = "development"
DEVELOPMENT_KEYS = f"{DEVELOPMENT_KID}:{base64.b64encode(hashlib.sha256(b'jiesu development only').digest()).decode()}"
DEVELOPMENT_CALLER_SECRET = "development-only"

_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_NONCE_BYTES = 12
_ID_NUMBER = re.compile(r"^[0-9]{17}[0-9X]$")
_NOT_ASCII_DIGIT = re.compile(r"[^0-9]")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


class PersonalDataError(Exception):
    """Personal data could not be sealed or opened; the message never holds the data or a key."""


@dataclass(frozen=True)
class Keyring:
    """AES-GCM keys by key id; the first seals."""

    keys: dict[str, bytes]
    writer: str

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """Keys from ``kid:base64key,kid:base64key``; each key 16, 24 or 32 bytes (AES-128/192/256)."""
        keys: dict[str, bytes] = {}
        for position, item in enumerate(part.strip() for part in spec.split(",")):
            kid, sep, encoded = item.partition(":")
            if not sep or not _KID.fullmatch(kid):
                raise PersonalDataError(f"key {position + 1}: write kid:base64key, the kid of letters, digits, _.-")
            if kid in keys:
                raise PersonalDataError(f"key {position + 1}: key id {kid} is given twice")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise PersonalDataError(f"key {kid}: the key is not valid base64") from None
            if len(key) not in (16, 24, 32):
                raise PersonalDataError(f"key {kid}: an AES key has 16, 24 or 32 bytes, this one {len(key)}")
            keys[kid] = key
        if not keys:
            raise PersonalDataError("no key given")
        return cls(keys=keys, writer=next(iter(keys)))

    def seal(self, value: dict[str, Any], *, context: str) -> str:
        """Encrypt a JSON object with the writing key, bound to ``context`` (e.g. the record's id)."""
        nonce = random_bytes(_NONCE_BYTES)
        plain = jsontext.dumps(value)
        sealed = self._sealer.encrypt(nonce, plain, context.encode())
        return f"{self.writer}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    @functools.cached_property
    def _sealer(self) -> AESGCM:
        # Made once per keyring rather than once per value sealed.
        return AESGCM(self.keys[self.writer])

    def open(self, sealed: str, *, context: str) -> dict[str, Any]:
        """Decrypt a value sealed by any key of the ring for the same ``context``."""
        kid, _, encoded = sealed.partition(":")
        key = self.keys.get(kid)
        if key is None:
            raise PersonalDataError(f"sealed with key {kid!r}, which is not configured")
        try:
            raw = base64.urlsafe_b64decode(encoded.encode())
            plain = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise PersonalDataError(f"the value sealed with key {kid!r} does not open for this record") from None
        value: dict[str, Any] = jsontext.loads(plain)
        return value

    def is_development(self) -> bool:
        """True when the publicly known development key is among the keys."""
        development = Keyring.parse(DEVELOPMENT_KEYS).keys[DEVELOPMENT_KID]
        return DEVELOPMENT_KID in self.keys or development in self.keys.values()


def mask_phone(phone: str | None) -> str | None:
    """A phone number masked as 138****1234 (short numbers fully)."""
    if not phone:
        return None
    digits = phone.replace(" ", "").replace("-", "")
    return "*" * len(digits) if len(digits) <= 7 else f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_name(name: str | None) -> str | None:
    """A name masked as 张* (two characters) or 张*三 / 欧**娜 (first and last kept, the rest starred)."""
    name = (name or "").strip()
    if not name:
        return None
    if len(name) <= 2:
        return name[0] + "*" * (len(name) - 1) if len(name) == 2 else "*"
    return f"{name[0]}{'*' * (len(name) - 2)}{name[-1]}"


def mask_id_number(id_number: str | None) -> str | None:
    """An ID number (身份证号) masked to its region code and last four: 110101********123X."""
    if not id_number:
        return None
    if len(id_number) <= 10:
        return "*" * len(id_number)
    return f"{id_number[:6]}{'*' * (len(id_number) - 10)}{id_number[-4:]}"


def caller_key(phone: str | None, *, secret: str) -> str | None:
    """A keyed pseudonym of the caller's phone (HMAC-SHA256 of its digits): equal for the same caller,
    and without the secret nobody can find a number by trying them all."""
    phone = phone or ""
    # Among ASCII characters only 0-9 are digits, so the common case needs no look at each character.
    digits = _NOT_ASCII_DIGIT.sub("", phone) if phone.isascii() else "".join(ch for ch in phone if ch.isdigit())
    if not digits:
        return None
    keyed = _keyed(secret).copy()
    keyed.update(digits.encode())
    return keyed.hexdigest()


@functools.lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    # The HMAC keyed once per secret; each pseudonym continues a copy of it.
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def check_id_number(value: str) -> str:
    """A resident ID number (居民身份证号, GB 11643) normalised (x → X), or ValueError without the value."""
    value = value.strip().upper()
    if not _ID_NUMBER.fullmatch(value):
        raise ValueError("id_number has 18 characters: 17 digits and a last digit or X")
    total = sum(int(digit) * weight for digit, weight in zip(value[:17], _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != value[17]:
        raise ValueError("id_number's check character does not match its first 17 digits (a mistyped digit?)")
    return value


def reporter_summary(reporter: dict[str, Any] | None, *, secret: str) -> dict[str, str | None] | None:
    """What may leave intake about a reporter: the masked forms and the caller pseudonym, never the values."""
    if not reporter:
        return None
    return {
        "name_masked": mask_name(reporter.get("name")),
        "phone_masked": mask_phone(reporter.get("phone")),
        "id_number_masked": mask_id_number(reporter.get("id_number")),
        "caller_key": caller_key(reporter.get("phone"), secret=secret),
    }


@dataclass(frozen=True)
class PersonalData:
    """What intake protects reporters with: the keyring at rest and the secret of the caller pseudonym."""

    keyring: Keyring
    caller_secret: str

    def summary(self, reporter: dict[str, Any] | None) -> dict[str, str | None] | None:
        """The reporter as it may leave intake (masked forms and caller key)."""
        return reporter_summary(reporter, secret=self.caller_secret)
