"""Object-level rules: which reports a credential may post, which units it may act for."""

from __future__ import annotations

from shared.auth.principal import Principal

# The one source each reporting role posts.
_SOURCE_OF_ROLE = {"hotline": "hotline", "grid": "grid", "town": "town"}


def report_refusal(
    principal: Principal, *, source: str, grid_code: str | None, street: str | None
) -> tuple[str, str] | None:
    """Why a credential may not post a report (the field and the reason), or None when it may.

    ``street`` is the street (街道) the report lies in, as placed by the jurisdiction; only towns need it.
    """
    expected = _SOURCE_OF_ROLE.get(principal.role)
    if expected is None:
        return None  # admin: any source, any place
    if source != expected:
        return "source", f"a {principal.role} credential posts only source={expected} reports"
    if principal.role == "grid" and grid_code not in principal.grids:
        return "grid_code", f"grid_code {grid_code} is not one of this credential's grids"
    if principal.role == "town" and (street is None or street not in principal.streets):
        return "address", "the report does not lie in this town's territory (its street codes)"
    return None


def unit_refusal(principal: Principal, unit_code: str) -> str | None:
    """Why a credential may not act as a unit, or None: staff and admin act for any unit."""
    if principal.acts_for_anyone or unit_code in principal.units:
        return None
    return f"this credential acts only for {', '.join(principal.units) or 'no unit'}, not {unit_code}"
