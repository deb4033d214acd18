"""The judge: each claim held against a tidy table of our measurements, one
verdict and a sentence saying why.

Verdicts: *holds*, *contradicted*, *not supported* (a claimed difference that our
two 95% intervals cannot tell from noise), *not comparable* (a number measured on
other hardware, shown but not judged) and *untestable* (needs what the study does
not have, or was not measured in this run).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .expressions import substituted
from .format import fmt, with_unit
from .metrics import METRICS
from .schema import (
    AbsoluteClaim,
    ArithmeticClaim,
    Claim,
    ComparativeClaim,
    DeviceFact,
    Fact,
    QualitativeClaim,
    Select,
    UntestableClaim,
    _pair_labels,
    _Valued,
)
from .units import convert, dimension

VERDICTS = ("holds", "contradicted", "not supported", "not comparable", "untestable")
COLUMNS = [
    "id", "article", "kind", "metric", "claim", "claimed", "hardware",
    "ours", "ratio", "claimed_ratio", "verdict", "reason",
]
# ratio: ours / claimed (absolute, single-valued qualitative), computed / claimed
# (arithmetic), ours A / B (comparative, directional qualitative; claimed_ratio is the
# article's A / B where it gives numbers).
MEASUREMENT_COLUMNS = ["metric", "model", "precision", "value", "lo", "hi", "n", "unit", "source"]


@dataclass(frozen=True)
class Measured:
    value: float
    lo: float
    hi: float
    n: int
    unit: str

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% CI, or the point itself when there is none (one value, or exact)."""
        if math.isfinite(self.lo) and math.isfinite(self.hi):
            return self.lo, self.hi
        return self.value, self.value

    def show(self) -> str:
        if dimension(self.unit)[0] == "flag":
            return with_unit(self.value, self.unit)
        ci = f" [{fmt(self.lo)}, {fmt(self.hi)}]" if math.isfinite(self.lo) and math.isfinite(self.hi) else ""
        n = f" (n={self.n})" if self.n and self.n > 1 else ""
        return f"{fmt(self.value)}{ci} {self.unit}{n}"


def _na(x: Any) -> bool:
    return x is None or (not isinstance(x, str) and pd.isna(x))


def _find(meas: pd.DataFrame, metric: str, sel: Select) -> Measured | None:
    """Our measurement of ``metric`` for ``sel``.

    A row with NA model/precision applies to every model/precision; a key the claim
    leaves out (the metric does not depend on it) matches any row. Rows that name the
    claim's keys win over rows that apply to all.
    """
    keys = ("model", "precision")
    best: list[pd.Series] = []
    best_score = -1
    for _, r in meas[meas["metric"] == metric].iterrows():
        if _na(r["value"]):  # a row without a value (e.g. no energy counter) measured nothing
            continue
        if not all(_na(r[k]) or getattr(sel, k) is None or r[k] == getattr(sel, k) for k in keys):
            continue
        score = sum(not _na(r[k]) and r[k] == getattr(sel, k) for k in keys)
        if score > best_score:
            best, best_score = [r], score
        elif score == best_score:
            best.append(r)
    if not best:
        return None
    # Rows for precisions a precision-free metric ignores must agree (params_total per dtype).
    if len({(float(r["value"]), str(r["unit"])) for r in best}) > 1:
        raise ValueError(f"measurements: {len(best)} different rows for metric {metric!r}, {sel.label()}; "
                         "expected one")
    r = best[0]
    unit = METRICS[metric].unit if _na(r["unit"]) else str(r["unit"])
    dimension(unit)  # an unknown unit is an error in the table, not a verdict
    num = lambda k: float("nan") if _na(r[k]) else float(r[k])  # noqa: E731
    return Measured(num("value"), num("lo"), num("hi"), 0 if _na(r["n"]) else int(r["n"]), unit)


def _same_gpu(theirs: str | None, ours: str) -> bool:
    if not theirs:
        return False
    norm = lambda s: re.sub(r"\s+", " ", s.lower().replace("nvidia", "")).strip()  # noqa: E731
    a, b = norm(theirs), norm(ours)
    return a in b or b in a


def _missing(metric: str, sels: list[Select]) -> str:
    which = "; ".join(s.label() for s in sels)
    return f"not measured in this run (metric {metric} missing for {which})"


def _row(c: Any, **kw: Any) -> dict[str, Any]:
    base = {"id": c.id, "article": c.article, "kind": c.kind, "metric": getattr(c, "metric", None),
            "claim": c.claim, "claimed": "", "hardware": c.hardware, "ours": "", "ratio": float("nan"),
            "claimed_ratio": float("nan")}
    return {**base, **kw}


def _judge_single(c: AbsoluteClaim | QualitativeClaim, valued: _Valued, unit: str, claimed: str,
                  meas: pd.DataFrame, our_hw: str) -> dict[str, Any]:
    got = _find(meas, c.metric, c.select)
    if got is None:
        return _row(c, claimed=claimed, verdict="untestable", reason=_missing(c.metric, [c.select]))
    scale = convert(1.0, unit, got.unit)  # claim unit -> measurement unit
    ratio = got.value / (valued.value * scale) if valued.value else float("nan")
    shown = dict(claimed=claimed, ours=got.show(), ratio=ratio)
    any_gpu = getattr(c, "any_gpu", False)
    if not (c.hardware_independent or any_gpu or _same_gpu(c.hardware, our_hw)):
        why = (f"different GPU ({c.hardware} vs {our_hw}): shown, not judged" if c.hardware
               else "the article names no GPU for this number and it depends on one: shown, not judged")
        return _row(c, **shown, verdict="not comparable", reason=why)
    ok = valued.holds(got.value, scale)
    where = (" (the quantity does not depend on the GPU)" if c.hardware_independent
             else f" (the article names no GPU; judged on {our_hw})" if any_gpu else "")
    reason = (f"{'holds' if ok else 'contradicted'}: ours is {got.show()}, the claim needs "
              f"{valued.wants(unit)}" + (f"; ratio ours/claimed {ratio:.2f}" if math.isfinite(ratio) else "")
              + where)
    return _row(c, **shown, verdict="holds" if ok else "contradicted", reason=reason)


def _judge_pair(c: ComparativeClaim | QualitativeClaim, claimed_dir: int, claimed_ratio: float, claimed: str,
                meas: pd.DataFrame, our_hw: str) -> dict[str, Any]:
    ga, gb = _find(meas, c.metric, c.a), _find(meas, c.metric, c.b)
    if ga is None or gb is None:
        absent = [s for s, g in ((c.a, ga), (c.b, gb)) if g is None]
        return _row(c, claimed=claimed, claimed_ratio=claimed_ratio, verdict="untestable",
                    reason=_missing(c.metric, absent))
    la, lb = _pair_labels(c.a, c.b)
    b_value = convert(gb.value, gb.unit, ga.unit)
    b_lo, b_hi = (convert(x, gb.unit, ga.unit) for x in gb.interval)
    ratio = ga.value / b_value if b_value else float("nan")
    shown = dict(claimed=claimed, ours=f"{la}: {ga.show()}; {lb}: {gb.show()}", ratio=ratio,
                 claimed_ratio=claimed_ratio)
    word = {1: "higher", -1: "lower"}
    said = (f"the article says {la} / {lb} = {claimed_ratio:.2f} ({la} {word[claimed_dir]})"
            if math.isfinite(claimed_ratio) else f"the article says {la} is {word[claimed_dir]}")
    hw = ""
    if c.hardware and not c.hardware_independent and not _same_gpu(c.hardware, our_hw):
        hw = f"; the article measured on {c.hardware}, we on {our_hw}: only the direction is judged"
    a_lo, a_hi = ga.interval
    if ga.value == b_value:
        return _row(c, **shown, verdict="contradicted",
                    reason=f"no difference: both are {fmt(ga.value)} {ga.unit}; {said}{hw}")
    if a_lo <= b_hi and b_lo <= a_hi:
        # Overlapping intervals do not show the difference is absent, only that
        # these data cannot tell it from noise: the claim is not supported.
        return _row(c, **shown, verdict="not supported",
                    reason=f"no difference beyond noise: the 95% CIs of {la} ({ga.show()}) and {lb} "
                           f"({gb.show()}) overlap; {said}{hw}")
    ours_dir = 1 if ga.value > b_value else -1
    ok = ours_dir == claimed_dir
    head = "direction holds" if ok else "direction reversed"
    reason = (f"{head}: {c.metric} {la} / {lb} = {ratio:.2f} here ({la} {word[ours_dir]}); {said}"
              + ("" if ok else " -> contradicted") + hw)
    return _row(c, **shown, verdict="holds" if ok else "contradicted", reason=reason)


def _judge_arithmetic(c: ArithmeticClaim) -> dict[str, Any]:
    values = c.input_values()
    got = c.computed()
    ok = c.holds(got)
    u = f" {c.unit}" if c.unit else ""
    facts = [f"{k} = {v.describe()}" for k, v in c.inputs.items() if isinstance(v, (Fact, DeviceFact))]
    where = f" ({'; '.join(facts)})" if facts else ""
    reason = (f"{'consistent' if ok else 'internally inconsistent'}: {c.result} is "
              f"{substituted(c.expression, values)} = {fmt(got)}{u}{where}; the claim needs {c.wants(c.unit)}")
    ratio = got / c.value if c.value else float("nan")
    return _row(c, claimed=c.show(c.unit), ours=f"{fmt(got)}{u} (computed)", ratio=ratio,
                verdict="holds" if ok else "contradicted", reason=reason)


def _claimed_untestable(c: UntestableClaim) -> str:
    u = f" {c.unit}" if c.unit else ""
    if c.a_value is not None and c.b_value is not None:
        return f"{fmt(c.a_value)}{u} vs {fmt(c.b_value)}{u}"
    if c.value is not None and c.value_high is not None:
        return f"{fmt(c.value)}-{fmt(c.value_high)}{u}"
    if c.value is not None:
        sym = {None: "", "approx": "~", "eq": "", "lt": "< ", "le": "<= ", "gt": "> ", "ge": ">= "}
        return f"{sym.get(c.relation, '')}{fmt(c.value)}{u}"
    return ""


def judge(claims: list[Claim], measurements: pd.DataFrame, our_hardware: str) -> pd.DataFrame:
    """One row per claim: what it says, our number, the verdict and a sentence saying why.

    ``measurements`` has columns metric, model, precision, value, lo, hi, n, unit,
    source; model/precision are NA for metrics that do not depend on them. A metric
    missing from it makes the claim "untestable", never a guessed number.
    """
    absent = [c for c in MEASUREMENT_COLUMNS if c not in measurements.columns]
    if absent:
        raise ValueError(f"measurements lack columns: {', '.join(absent)}")
    rows = []
    for c in claims:
        if isinstance(c, AbsoluteClaim):
            rows.append(_judge_single(c, c, c.unit, c.show(c.unit), measurements, our_hardware))
        elif isinstance(c, ComparativeClaim):
            claimed = f"{fmt(c.a_value)} {c.unit} vs {fmt(c.b_value)} {c.unit}"
            rows.append(_judge_pair(c, 1 if c.a_value > c.b_value else -1, c.a_value / c.b_value if c.b_value
                                    else float("nan"), claimed, measurements, our_hardware))
        elif isinstance(c, QualitativeClaim) and c.select is not None:
            rows.append(_judge_single(c, c.as_valued(), c.unit, c.stated, measurements, our_hardware))
        elif isinstance(c, QualitativeClaim):
            rows.append(_judge_pair(c, 1 if c.direction == "higher" else -1, float("nan"), c.stated,
                                    measurements, our_hardware))
        elif isinstance(c, ArithmeticClaim):
            rows.append(_judge_arithmetic(c))
        else:
            rows.append(_row(c, claimed=_claimed_untestable(c), verdict="untestable", reason=c.reason))
    return pd.DataFrame(rows, columns=COLUMNS)
