"""Validating what users write (problem files, placements, experiment configs) against a JSON Schema, with
one line per error naming the file, the field and what is allowed."""
from __future__ import annotations

import math

import jsonschema


def number(minimum: float | None = None, exclusive: bool = False) -> dict:
    """A number, optionally ≥ or > `minimum` (`check` refuses NaN and ±inf everywhere)."""
    out: dict = {"type": "number"}
    if minimum is not None:
        out["exclusiveMinimum" if exclusive else "minimum"] = minimum
    return out


def _where(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "(top level)"


def _non_finite(data: object, path: tuple = ()) -> tuple | None:
    """Path to the first NaN or ±inf in `data` (JSON Schema's comparisons cannot see NaN)."""
    if isinstance(data, float) and not math.isfinite(data):
        return path
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        found = _non_finite(v, (*path, k))
        if found is not None:
            return found
    return None


def _say(err: jsonschema.ValidationError) -> tuple[str, str]:
    """(field, what is wrong) in a user's words for the validators whose own message is unclear."""
    where = _where(err.absolute_path)
    if err.validator == "required":
        missing = [k for k in err.validator_value if isinstance(err.instance, dict) and k not in err.instance]
        field = ".".join(x for x in (where if err.absolute_path else "", missing[0] if missing else "") if x)
        return field, "missing field"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = ", ".join(err.schema.get("properties", {}))
        return where, f"unknown field(s) {', '.join(map(repr, extra))}" + (f" (allowed: {allowed})" if allowed else "")
    if err.validator == "enum":
        return where, f"unknown value {err.instance!r} (allowed: {', '.join(map(str, err.validator_value))})"
    if err.validator == "minItems" and err.validator_value == 1:
        return where, "must not be empty"
    return where, err.message


def check(data: object, schema: dict, source: str) -> None:
    """Raise ValueError("<source>: <field>: <what is wrong>") for the most relevant violation."""
    bad = _non_finite(data)
    if bad is not None:
        raise ValueError(f"{source}: {_where(bad)}: must be a finite number")
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if err is not None:
        field, what = _say(err)
        raise ValueError(f"{source}: {field}: {what}")
