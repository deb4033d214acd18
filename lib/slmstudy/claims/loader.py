"""Reading ``claims.yaml``: every problem of every claim reported at once, each
naming the claim and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..params.loader import allowed_keys, dotted, excerpt
from .schema import _BY_KIND, _CLAIM, KINDS, Claim, ClaimsError

CLAIMS_FILE = Path(__file__).resolve().parent / "claims.yaml"


def _validate(entry: Any, where: str) -> tuple[Any, list[str]]:
    """One claim, or the problems with it (each naming the claim and the key)."""
    cid = entry.get("id") if isinstance(entry, dict) else None
    head = f"{where}: claim {cid!r}" if cid else where
    if not isinstance(entry, dict):
        return None, [f"{head}: expected a mapping of keys, got {type(entry).__name__}"]
    kind = entry.get("kind")
    try:
        return _CLAIM.validate_python(entry), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err["loc"][1:] if err["loc"] and err["loc"][0] == kind else err["loc"]
            key = dotted(loc)
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                problems.append(f"{head}: key 'kind': {kind!r} is not a kind; allowed: {', '.join(KINDS)}")
            elif err["type"] == "extra_forbidden":
                allowed = ", ".join(allowed_keys(_BY_KIND[kind], loc))
                problems.append(f"{head}: unknown key {key!r} for {_a(kind)} claim; allowed here: {allowed}")
            elif err["type"] == "missing":
                problems.append(f"{head}: missing required key {key!r} for {_a(kind)} claim")
            elif key:
                msg = err["msg"].removeprefix("Value error, ")
                got = "" if isinstance(err.get("input"), (dict, list)) else f" (got {excerpt(err.get('input'))})"
                problems.append(f"{head}: key {key!r}: {msg}{got}")
            else:  # a check across keys (model_validator): the message names them
                problems.append(f"{head}: {err['msg'].removeprefix('Value error, ')}")
        return None, problems


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def load(path: str | Path | None = None) -> list[Claim]:
    """Every claim of ``path`` (the shipped claims.yaml by default); ClaimsError lists every problem."""
    path = Path(path) if path is not None else CLAIMS_FILE
    where = path.name
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ClaimsError([f"{where}: not valid YAML: {exc}"]) from None
    if not isinstance(data, list):
        raise ClaimsError([f"{where}: expected a list of claims at the top level, got {type(data).__name__}"])
    claims, problems, seen = [], [], set()
    for entry in data:
        claim, errs = _validate(entry, where)
        problems += errs
        if claim is None:
            continue
        if claim.id in seen:
            problems.append(f"{where}: claim {claim.id!r}: id used more than once")
        seen.add(claim.id)
        claims.append(claim)
    if problems:
        raise ClaimsError(problems)
    return claims
