"""The plain data types the guide's content modules are written in."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Literal

Urgency = Literal["normal", "urgent", "emergency"]
Transfer = Literal["110", "119", "120", "122"]
Profile = Literal["consult", "quick", "general", "complex", "utility", "hazard", "emergency"]


@dataclass(frozen=True, slots=True)
class K:
    """One kind (种) as written by hand; codes are numbered when the guide is built.

    `p` is the primary unit's code, or `street` / `district` when the territory is responsible (属地).
    `co`, `req` and `kw` are space-separated lists. `tl` names a time-limit profile (see build.TIME_LIMITS);
    without it, consultations get `consult`, emergencies `emergency` and everything else `general`.
    """

    name: str
    en: str
    desc: str
    p: str
    _: KW_ONLY
    grid: str
    street: str
    dept: str
    req: str
    kw: str
    ex: tuple[str, ...]
    co: str = ""
    law: str = ""
    urg: Urgency = "normal"
    to: Transfer | None = None
    tl: Profile | None = None


@dataclass(frozen=True, slots=True)
class C:
    """One category (类) with its kinds."""

    name: str
    en: str
    kinds: tuple[K, ...]

    def __init__(self, name: str, en: str, *kinds: K) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "en", en)
        object.__setattr__(self, "kinds", kinds)


@dataclass(frozen=True, slots=True)
class D:
    """One domain (领域), a first-level class of the reference taxonomy, with its categories."""

    code: str
    name: str
    en: str
    categories: tuple[C, ...]
