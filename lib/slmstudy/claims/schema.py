"""The schema of a claim: what it says, about which measurement, and how it is
compared (strict: unknown keys are rejected, each kind must carry the fields it
needs, metric, model and precision keys must be known)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import AfterValidator, Field, TypeAdapter, model_validator

from .. import analytic, catalog
from ..errors import SlmstudyError
from ..params import ModelKey, PrecisionKey, Strict
from .expressions import CONSTANTS, evaluate, names
from .format import fmt, with_unit
from .metrics import METRICS, MetricId
from .units import Unit, dimension

Relation = Literal["approx", "eq", "lt", "le", "gt", "ge", "range"]
Article = Literal["000", "001", "002"]


class ClaimsError(SlmstudyError):
    """The claims file is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n  ".join(self.problems)
        super().__init__(f"invalid claims:\n  {lines}")


class Select(Strict):
    """Which of our measurements a claim is about."""

    model: ModelKey | None = None
    precision: PrecisionKey | None = None

    def label(self) -> str:
        parts = [catalog.model(self.model).display if self.model else None,
                 catalog.precision(self.precision).display if self.precision else None]
        return " ".join(p for p in parts if p) or "any"


def _check_select(metric: str, sel: Select, key: str) -> None:
    m = METRICS[metric]
    if m.per_model and sel.model is None:
        raise ValueError(f"{key}: metric {metric!r} depends on the model; name one")
    if m.per_precision and sel.precision is None:
        raise ValueError(f"{key}: metric {metric!r} depends on the precision; name one")
    if not m.per_precision and sel.precision is not None:
        raise ValueError(f"{key}: metric {metric!r} does not depend on the precision; leave it out")


def _checkdimension(metric: str, unit: str) -> None:
    want = METRICS[metric].unit
    if dimension(unit)[0] != dimension(want)[0]:
        raise ValueError(f"unit {unit!r} does not measure what metric {metric!r} does (in {want!r})")


def _pair_labels(a: Select, b: Select) -> tuple[str, str]:
    """Name A and B by what differs between them (model, precision or both)."""
    def part(sel: Select, model: bool, prec: bool) -> str:
        out = []
        if model and sel.model:
            out.append(catalog.model(sel.model).display)
        if prec and sel.precision:
            out.append(catalog.precision(sel.precision).display)
        return " ".join(out)

    dm, dp = a.model != b.model, a.precision != b.precision
    return part(a, dm, dp), part(b, dm, dp)


class _Claim(Strict):
    id: str = Field(pattern=r"^a(000|001|002)-[a-z0-9][a-z0-9.-]*$")
    article: Article
    claim: str = Field(min_length=1)
    original: str = Field(min_length=1)
    hardware: str | None
    software: str | None
    note: str | None = None

    @model_validator(mode="after")
    def _id_names_article(self) -> "_Claim":
        if not self.id.startswith(f"a{self.article}-"):
            raise ValueError(f"id {self.id!r} must start with 'a{self.article}-' (its article)")
        return self


class _Valued(Strict):
    """A claimed value with how it is compared: ``<ours or computed> <relation> <value>``.

    ``approx`` allows ``tolerance_pct`` (default 10%) or ``tolerance_abs`` (in the
    claim's unit); the other relations are exact unless a tolerance is given.
    """

    value: float
    value_high: float | None = None
    relation: Relation = "approx"
    tolerance_pct: float | None = Field(None, ge=0)
    tolerance_abs: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _range_and_tolerance(self) -> "_Valued":
        if (self.relation == "range") != (self.value_high is not None):
            raise ValueError("relation 'range' needs value_high, and value_high needs relation 'range'")
        if self.value_high is not None and self.value_high <= self.value:
            raise ValueError(f"value_high {self.value_high} must exceed value {self.value}")
        if self.tolerance_pct is not None and self.tolerance_abs is not None:
            raise ValueError("give tolerance_pct or tolerance_abs, not both")
        return self

    def slack(self, at: float) -> float:
        """Allowed deviation at ``at`` (a value in the claim's unit)."""
        if self.tolerance_abs is not None:
            return self.tolerance_abs
        pct = self.tolerance_pct if self.tolerance_pct is not None else (10.0 if self.relation == "approx" else 0.0)
        return abs(at) * pct / 100

    def holds(self, x: float, scale: float = 1.0) -> bool:
        """Whether ``x`` (in the claim's unit times ``scale``) satisfies the claim."""
        v, lo_slack = self.value * scale, self.slack(self.value) * scale
        if self.relation == "range":
            hi, hi_slack = self.value_high * scale, self.slack(self.value_high) * scale
            return v - lo_slack <= x <= hi + hi_slack
        return {
            "approx": lambda: abs(x - v) <= lo_slack,
            "eq": lambda: abs(x - v) <= lo_slack,
            "lt": lambda: x < v + lo_slack,
            "le": lambda: x <= v + lo_slack,
            "gt": lambda: x > v - lo_slack,
            "ge": lambda: x >= v - lo_slack,
        }[self.relation]()

    def show(self, unit: str | None) -> str:
        u = f" {unit}" if unit else ""
        if self.relation == "range":
            return f"{fmt(self.value)}-{fmt(self.value_high)}{u}"
        sym = {"approx": "~", "eq": "", "lt": "< ", "le": "<= ", "gt": "> ", "ge": ">= "}[self.relation]
        return f"{sym}{fmt(self.value)}{u}"

    def wants(self, unit: str | None) -> str:
        if unit == "flag" and self.relation == "eq":
            return with_unit(self.value, unit)
        u = f" {unit}" if unit else ""
        tol = self.slack(self.value)
        extra = f" (+/- {fmt(tol)}{u} allowed)" if tol else ""
        if self.relation == "range":
            return f"between {fmt(self.value)} and {fmt(self.value_high)}{u}{extra}"
        word = {"approx": "about", "eq": "exactly", "lt": "below", "le": "at most", "gt": "above",
                "ge": "at least"}[self.relation]
        return f"{word} {fmt(self.value)}{u}{extra}"


class AbsoluteClaim(_Claim, _Valued):
    kind: Literal["absolute"]
    metric: MetricId
    select: Select
    unit: Unit
    hardware_independent: bool
    # The article names no GPU and states this as a property of its deployment:
    # judged on ours (an H100 is the favourable case for such a claim).
    any_gpu: bool = False

    @model_validator(mode="after")
    def _fits_metric(self) -> "AbsoluteClaim":
        _check_select(self.metric, self.select, "select")
        _checkdimension(self.metric, self.unit)
        if self.any_gpu and (self.hardware is not None or self.hardware_independent):
            raise ValueError("any_gpu is for claims that name no GPU (hardware: null) and depend on one")
        return self


class ComparativeClaim(_Claim):
    kind: Literal["comparative"]
    metric: MetricId
    a: Select
    b: Select
    a_value: float
    b_value: float
    unit: Unit
    hardware_independent: bool = False

    @model_validator(mode="after")
    def _fits_metric(self) -> "ComparativeClaim":
        _check_select(self.metric, self.a, "a")
        _check_select(self.metric, self.b, "b")
        _checkdimension(self.metric, self.unit)
        if self.a == self.b:
            raise ValueError("a and b select the same measurement")
        if self.a_value == self.b_value:
            raise ValueError("a_value equals b_value: a comparative claim needs a direction")
        return self


class QualitativeClaim(_Claim):
    """Either one value with a relation (``select``, ``relation``, ``value``, ``unit``)
    or a direction between two (``a``, ``b``, ``direction``: A's metric is higher/lower)."""

    kind: Literal["qualitative"]
    metric: MetricId
    stated: str = Field(min_length=1)
    select: Select | None = None
    relation: Literal["eq", "lt", "le", "gt", "ge"] | None = None
    value: float | None = None
    unit: Unit | None = None
    a: Select | None = None
    b: Select | None = None
    direction: Literal["higher", "lower"] | None = None
    hardware_independent: bool = False

    @model_validator(mode="after")
    def _one_form(self) -> "QualitativeClaim":
        single = (self.select, self.relation, self.value, self.unit)
        pair = (self.a, self.b, self.direction)
        if all(x is not None for x in single) and all(x is None for x in pair):
            _check_select(self.metric, self.select, "select")
            _checkdimension(self.metric, self.unit)
        elif all(x is not None for x in pair) and all(x is None for x in single):
            _check_select(self.metric, self.a, "a")
            _check_select(self.metric, self.b, "b")
            if self.a == self.b:
                raise ValueError("a and b select the same measurement")
        else:
            raise ValueError("a qualitative claim needs either select + relation + value + unit, "
                             "or a + b + direction (and nothing of the other form)")
        return self

    def as_valued(self) -> _Valued:
        return _Valued(value=self.value, relation=self.relation)


class Fact(Strict):
    """A public architecture fact, computed from the shipped config.json by analytic.py."""

    fact: Literal["params_total", "params_non_embedding", "max_position_embeddings",
                  "weight_bytes", "kv_bytes_per_token"]
    model: ModelKey
    precision: PrecisionKey | None = None

    @model_validator(mode="after")
    def _precision_when_needed(self) -> "Fact":
        needs = self.fact in ("weight_bytes", "kv_bytes_per_token")
        if needs != (self.precision is not None):
            raise ValueError(f"fact {self.fact!r} {'needs' if needs else 'takes no'} precision")
        return self

    def value(self) -> float:
        cfg = catalog.model(self.model).hf_config()
        if self.precision is not None:
            facts = analytic.model_facts(cfg, catalog.precision(self.precision))
            return float(getattr(facts, self.fact))
        arch = analytic.Architecture.from_config(cfg)
        return float({
            "params_total": arch.total_params,
            "params_non_embedding": arch.total_params - arch.embedding_params,
            "max_position_embeddings": arch.max_position,
        }[self.fact])

    def describe(self) -> str:
        prec = f", {self.precision}" if self.precision else ""
        return f"{fmt(self.value())}, the {self.fact} of {self.model}{prec} by its config.json"


def _known_device(value: str) -> str:
    if value not in catalog.devices():
        raise ValueError(f"unknown device {value!r}; known: {', '.join(catalog.devices())}")
    return value


class DeviceFact(Strict):
    """A device's published memory bandwidth (GB/s), from ``catalog/devices.yaml``
    (which cites where it is published), so a claim never retypes it."""

    device_bandwidth_gb_s: Annotated[str, AfterValidator(_known_device)]

    def value(self) -> float:
        return float(catalog.devices()[self.device_bandwidth_gb_s].bandwidth_gb_s)

    def describe(self) -> str:
        dev = catalog.devices()[self.device_bandwidth_gb_s]
        return f"{fmt(self.value())} GB/s, the published memory bandwidth of the {dev.display} ({dev.memory})"


class ArithmeticClaim(_Claim, _Valued):
    kind: Literal["arithmetic"]
    # What the expression computes, in words: it opens the verdict's reason.
    result: str = Field(min_length=1)
    expression: str
    inputs: dict[str, float | Fact | DeviceFact]
    unit: Unit | None

    @model_validator(mode="after")
    def _expression_uses_inputs(self) -> "ArithmeticClaim":
        used = names(self.expression)
        missing = used - set(self.inputs) - set(CONSTANTS)
        unused = set(self.inputs) - used
        problems = []
        if missing:
            problems.append(f"expression uses undefined names: {', '.join(sorted(missing))}")
        if unused:
            problems.append(f"inputs not used by the expression: {', '.join(sorted(unused))}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def input_values(self) -> dict[str, float]:
        return {k: (float(v) if isinstance(v, (int, float)) else v.value()) for k, v in self.inputs.items()}

    def computed(self) -> float:
        return evaluate(self.expression, self.input_values())


class UntestableClaim(_Claim):
    kind: Literal["untestable"]
    reason: str = Field(min_length=1)
    value: float | None = None
    value_high: float | None = None
    relation: Relation | None = None
    a_value: float | None = None
    b_value: float | None = None
    unit: Unit | None = None


Claim = Annotated[
    Union[AbsoluteClaim, ComparativeClaim, QualitativeClaim, ArithmeticClaim, UntestableClaim],
    Field(discriminator="kind"),
]
_CLAIM = TypeAdapter(Claim)
KINDS = ("absolute", "comparative", "qualitative", "arithmetic", "untestable")
_BY_KIND = {"absolute": AbsoluteClaim, "comparative": ComparativeClaim, "qualitative": QualitativeClaim,
            "arithmetic": ArithmeticClaim, "untestable": UntestableClaim}
