"""The three source articles' claims as data, and the judge that holds them against our numbers.

``claims.yaml`` (beside this module) lists every numeric or comparative claim of
the articles in ``shared/seeds/`` one entry each, validated here by a strict
schema: unknown keys are rejected, each kind must carry the fields it needs, and
metric, model and precision keys must be known. ``judge`` turns the claims and a
tidy table of our measurements into one verdict per claim.

Kinds, and how each is judged:

* ``absolute``: a number on the article's hardware. Judged against ours only when
  the quantity does not depend on the GPU (``hardware_independent``: weights,
  parameter counts, context length) or the article names no GPU and states it as a
  property of the deployment (``any_gpu``); otherwise shown, "not comparable".
* ``comparative``: A vs B. Judged by direction; the ratio is reported. When our two
  95% CIs overlap the claimed difference is not supported ("no difference beyond noise").
* ``qualitative``: yes/no or high/medium, mapped to a metric: either one value with a
  relation (``tensor_parallel_supported`` = 1) or a direction between A and B.
* ``arithmetic``: checkable from the article's own numbers or public architecture
  facts alone; the expression is evaluated here, never typed in by hand.
* ``untestable``: needs weights, data sets or hardware the study does not have.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import pandas as pd
import yaml
from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, model_validator

from .. import analytic, catalog
from ..errors import SlmstudyError
from ..params import ModelKey, PrecisionKey, Strict

CLAIMS_FILE = Path(__file__).resolve().parent / "claims.yaml"

VERDICTS = ("holds", "contradicted", "not comparable", "untestable")
COLUMNS = [
    "id", "article", "kind", "metric", "claim", "claimed", "hardware",
    "ours", "ratio", "claimed_ratio", "verdict", "reason",
]
# ratio: ours / claimed (absolute, single-valued qualitative), computed / claimed
# (arithmetic), ours A / B (comparative, directional qualitative; claimed_ratio is the
# article's A / B where it gives numbers).
MEASUREMENT_COLUMNS = ["metric", "model", "precision", "value", "lo", "hi", "n", "unit", "source"]


class ClaimsError(SlmstudyError):
    """The claims file is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n  ".join(self.problems)
        super().__init__(f"invalid claims:\n  {lines}")


# ------------------------------------------------------------------------ metrics
@dataclass(frozen=True)
class Metric:
    """What the report must provide under this id; ``unit`` is the canonical unit."""

    definition: str
    unit: str
    per_model: bool = True
    per_precision: bool = True


METRICS: dict[str, Metric] = {
    "engine_start_cold_s": Metric("engine start until ready to serve, first start (no vLLM compile cache)", "s"),
    "engine_start_warm_s": Metric("engine start until ready, second start reusing vLLM's compile cache", "s"),
    "weights_gib": Metric("device memory of the model weights as vLLM reports it", "GiB"),
    "start_memory_gib": Metric(
        "device memory the engine holds excluding the KV cache: weights + activation peak + CUDA graphs + non-torch",
        "GiB"),
    "peak_memory_gib": Metric(
        "device memory the engine process held at its peak, KV cache included, at gpu_memory_utilization 0.9", "GiB"),
    "workload_memory_gib": Metric("start_memory_gib plus the KV cache the workload actually needs", "GiB"),
    "ttft_b1_s": Metric("time to first token of a single request", "s"),
    "output_tok_s_b1": Metric("output tokens per second of a single request (decode speed)", "tok/s"),
    "output_tok_s_b4": Metric("output tokens per second of a batch of 4 requests (throughput)", "tok/s"),
    "req_per_min_b4": Metric("completed requests per minute at batch 4", "req/min"),
    "tpot_b1_s": Metric("time per output token after the first, single request", "s"),
    "kv_bytes_per_token": Metric("KV-cache bytes one token occupies", "B"),
    "kv_capacity_tokens": Metric("tokens the KV cache holds at gpu_memory_utilization 0.9", "tokens"),
    "max_context_tokens": Metric("the config's max_position_embeddings", "tokens", per_precision=False),
    "params_total": Metric("parameters in the model (tied weights counted once)", "params", per_precision=False),
    "params_non_embedding": Metric("params_total minus the input embedding", "params", per_precision=False),
    "tensor_parallel_supported": Metric("1 if vLLM runs the model with tensor parallelism, else 0", "flag",
                                        per_precision=False),
    "paged_attention_supported": Metric("1 if vLLM serves the model from its paged KV cache, else 0", "flag",
                                        per_precision=False),
    "time_100in_512out_s": Metric("end-to-end time of one request, 100 input and 512 output tokens", "s"),
    "tok_s_100in_512out": Metric("512 / time_100in_512out_s (article 001's speed test)", "tok/s"),
    "j_per_output_token_b1": Metric("GPU energy per output token, single request", "J/tok"),
    "gpm_sm_active_pct_b1": Metric("GPM SM activity during single-request decode", "%"),
    "serving_max_concurrency_meeting_ttft_slo": Metric(
        "largest tested concurrency of the serving study whose mean TTFT is <= 200 ms", "req"),
    "serving_mean_ttft_s_c16": Metric("serving study: mean TTFT at concurrency 16", "s"),
    "serving_mean_e2e_s_c16": Metric("serving study: mean end-to-end request latency at concurrency 16", "s"),
    # Added for article 000's "the lead grows under concurrency": A's lead at batch 4
    # over its lead at batch 1 equals A's batching gain over B's.
    "output_tok_s_b4_over_b1": Metric("output_tok_s_b4 / output_tok_s_b1 of the same model and precision", "x"),
}

# unit -> (dimension, factor to the dimension's base). "GB" is read literally as
# 10^9 bytes: the articles never say which they mean, and the notes of the memory
# claims say what the binary reading would change.
UNITS: dict[str, tuple[str, float]] = {
    "B": ("bytes", 1.0), "KB": ("bytes", 1e3), "MB": ("bytes", 1e6), "GB": ("bytes", 1e9),
    "KiB": ("bytes", 1024.0), "MiB": ("bytes", 1024.0**2), "GiB": ("bytes", 1024.0**3),
    "s": ("time", 1.0), "ms": ("time", 1e-3), "min": ("time", 60.0),
    "tok/s": ("token rate", 1.0),
    "req/min": ("request rate", 1.0), "req/s": ("request rate", 60.0),
    "tokens": ("tokens", 1.0),
    "params": ("parameters", 1.0),
    "req": ("requests", 1.0),
    "flag": ("flag", 1.0),
    "%": ("percent", 1.0),
    "J/tok": ("energy per token", 1.0),
    "x": ("ratio", 1.0),
    "cm^2": ("area", 1.0),
    # Spellings a measurement table may use for the same units.
    "bytes": ("bytes", 1.0), "tokens/s": ("token rate", 1.0), "parameters": ("parameters", 1.0),
    "concurrent requests": ("requests", 1.0), "yes=1": ("flag", 1.0), "J/token": ("energy per token", 1.0),
    "J": ("energy per token", 1.0),  # per output token, as the report's j_per_output_token_b1 row says
}


def _known_metric(value: str) -> str:
    if value not in METRICS:
        raise ValueError(f"unknown metric {value!r}; known: {', '.join(METRICS)}")
    return value


def _known_unit(value: str) -> str:
    if value not in UNITS:
        raise ValueError(f"unknown unit {value!r}; known: {', '.join(UNITS)}")
    return value


MetricId = Annotated[str, AfterValidator(_known_metric)]
Unit = Annotated[str, AfterValidator(_known_unit)]
Relation = Literal["approx", "eq", "lt", "le", "gt", "ge", "range"]
Article = Literal["000", "001", "002"]


def convert(value: float, unit: str, to: str) -> float:
    """``value`` in ``unit`` expressed in ``to``; the two must share a dimension."""
    (dim_from, f_from), (dim_to, f_to) = _unit(unit), _unit(to)
    if dim_from != dim_to:
        raise ValueError(f"cannot convert {unit} ({dim_from}) to {to} ({dim_to})")
    return value * f_from / f_to


def _unit(unit: str) -> tuple[str, float]:
    try:
        return UNITS[unit]
    except KeyError:
        raise ValueError(f"unknown unit {unit!r}; known: {', '.join(UNITS)}") from None


# ----------------------------------------------------------------------- schema
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


def _check_unit(metric: str, unit: str) -> None:
    want = METRICS[metric].unit
    if _unit(unit)[0] != _unit(want)[0]:
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
            return f"{_fmt(self.value)}-{_fmt(self.value_high)}{u}"
        sym = {"approx": "~", "eq": "", "lt": "< ", "le": "<= ", "gt": "> ", "ge": ">= "}[self.relation]
        return f"{sym}{_fmt(self.value)}{u}"

    def wants(self, unit: str | None) -> str:
        if unit == "flag" and self.relation == "eq":
            return _with_unit(self.value, unit)
        u = f" {unit}" if unit else ""
        tol = self.slack(self.value)
        extra = f" (+/- {_fmt(tol)}{u} allowed)" if tol else ""
        if self.relation == "range":
            return f"between {_fmt(self.value)} and {_fmt(self.value_high)}{u}{extra}"
        word = {"approx": "about", "eq": "exactly", "lt": "below", "le": "at most", "gt": "above",
                "ge": "at least"}[self.relation]
        return f"{word} {_fmt(self.value)}{u}{extra}"


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
        _check_unit(self.metric, self.unit)
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
        _check_unit(self.metric, self.unit)
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
            _check_unit(self.metric, self.unit)
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
        return f"{_fmt(self.value())}, the {self.fact} of {self.model}{prec} by its config.json"


class ArithmeticClaim(_Claim, _Valued):
    kind: Literal["arithmetic"]
    # What the expression computes, in words: it opens the verdict's reason.
    result: str = Field(min_length=1)
    expression: str
    inputs: dict[str, float | Fact]
    unit: Unit | None

    @model_validator(mode="after")
    def _expression_uses_inputs(self) -> "ArithmeticClaim":
        names = _expression_names(self.expression)
        missing = names - set(self.inputs) - set(_CONSTANTS)
        unused = set(self.inputs) - names
        problems = []
        if missing:
            problems.append(f"expression uses undefined names: {', '.join(sorted(missing))}")
        if unused:
            problems.append(f"inputs not used by the expression: {', '.join(sorted(unused))}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def input_values(self) -> dict[str, float]:
        return {k: (v.value() if isinstance(v, Fact) else float(v)) for k, v in self.inputs.items()}

    def computed(self) -> float:
        return _evaluate(self.expression, self.input_values())


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


# ------------------------------------------------------------------ expressions
_CONSTANTS = {"pi": math.pi}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNOPS = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _parse(expression: str) -> ast.Expression:
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"expression {expression!r} does not parse: {exc.msg}") from None
    for node in ast.walk(tree):
        ok = isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load,
                               *_BINOPS, *_UNOPS))
        ok = ok or (isinstance(node, ast.Constant) and isinstance(node.value, (int, float)))
        if not ok:
            raise ValueError(f"expression {expression!r}: only numbers, names, + - * / ** and "
                             f"parentheses are allowed, not {type(node).__name__}")
    return tree


def _expression_names(expression: str) -> set[str]:
    return {n.id for n in ast.walk(_parse(expression)) if isinstance(n, ast.Name)}


def _evaluate(expression: str, values: dict[str, float]) -> float:
    env = {**_CONSTANTS, **values}

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            return _UNOPS[type(node.op)](ev(node.operand))
        raise ValueError(f"unexpected {type(node).__name__}")  # _parse admits nothing else

    return float(ev(_parse(expression)))


def _substituted(expression: str, values: dict[str, float]) -> str:
    """The expression with its inputs written in, for the reason a reader sees."""
    tree = _parse(expression)

    class Sub(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return ast.Name(id=_fmt_in_expression(values[node.id]), ctx=node.ctx) if node.id in values else node

        def visit_Constant(self, node: ast.Constant) -> ast.AST:
            return ast.Name(id=_fmt_in_expression(node.value), ctx=ast.Load())

    return ast.unparse(Sub().visit(tree))


# ---------------------------------------------------------------------- loading
def _dotted(loc: tuple[Any, ...]) -> str:
    s = ""
    for part in loc:
        s += f"[{part}]" if isinstance(part, int) else ("." if s else "") + str(part)
    return s


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
            key = _dotted(loc)
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                problems.append(f"{head}: key 'kind': {kind!r} is not a kind; allowed: {', '.join(KINDS)}")
            elif err["type"] == "extra_forbidden":
                allowed = ", ".join(_allowed(_BY_KIND[kind], loc))
                problems.append(f"{head}: unknown key {key!r} for {_a(kind)} claim; allowed here: {allowed}")
            elif err["type"] == "missing":
                problems.append(f"{head}: missing required key {key!r} for {_a(kind)} claim")
            elif key:
                msg = err["msg"].removeprefix("Value error, ")
                got = "" if isinstance(err.get("input"), (dict, list)) else f" (got {err.get('input')!r})"
                problems.append(f"{head}: key {key!r}: {msg}{got}")
            else:  # a check across keys (model_validator): the message names them
                problems.append(f"{head}: {err['msg'].removeprefix('Value error, ')}")
        return None, problems


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _allowed(model: type[Strict], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (sub-)model that holds ``loc``."""
    for part in loc[:-1]:
        if isinstance(part, int) or part not in model.model_fields:
            continue
        ann = model.model_fields[part].annotation
        inner = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, Strict)),
                     None)
        if inner is not None:
            model = inner
    return list(model.model_fields)


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


# ------------------------------------------------------------------------ judge
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
        if _unit(self.unit)[0] == "flag":
            return _with_unit(self.value, self.unit)
        ci = f" [{_fmt(self.lo)}, {_fmt(self.hi)}]" if math.isfinite(self.lo) and math.isfinite(self.hi) else ""
        n = f" (n={self.n})" if self.n and self.n > 1 else ""
        return f"{_fmt(self.value)}{ci} {self.unit}{n}"


def _fmt(x: float | None) -> str:
    """Three significant digits; whole numbers from 1000 up in full (4,096 tokens, 1,777,088,000 params)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _fmt_in_expression(x: float) -> str:
    """No thousands separators inside an expression: they would read as argument lists."""
    return f"{x:.10g}"


def _with_unit(x: float, unit: str | None) -> str:
    if unit is not None and unit in UNITS and UNITS[unit][0] == "flag" and x in (0, 1):
        return "yes" if x else "no"
    return f"{_fmt(x)} {unit}" if unit else _fmt(x)


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
    _unit(unit)  # an unknown unit is an error in the table, not a verdict
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
                    reason=f"no difference: both are {_fmt(ga.value)} {ga.unit}; {said}{hw}")
    if a_lo <= b_hi and b_lo <= a_hi:
        return _row(c, **shown, verdict="contradicted",
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
    facts = [f"{k} = {v.describe()}" for k, v in c.inputs.items() if isinstance(v, Fact)]
    where = f" ({'; '.join(facts)})" if facts else ""
    reason = (f"{'consistent' if ok else 'internally inconsistent'}: {c.result} is "
              f"{_substituted(c.expression, values)} = {_fmt(got)}{u}{where}; the claim needs {c.wants(c.unit)}")
    ratio = got / c.value if c.value else float("nan")
    return _row(c, claimed=c.show(c.unit), ours=f"{_fmt(got)}{u} (computed)", ratio=ratio,
                verdict="holds" if ok else "contradicted", reason=reason)


def _claimed_untestable(c: UntestableClaim) -> str:
    u = f" {c.unit}" if c.unit else ""
    if c.a_value is not None and c.b_value is not None:
        return f"{_fmt(c.a_value)}{u} vs {_fmt(c.b_value)}{u}"
    if c.value is not None and c.value_high is not None:
        return f"{_fmt(c.value)}-{_fmt(c.value_high)}{u}"
    if c.value is not None:
        sym = {None: "", "approx": "~", "eq": "", "lt": "< ", "le": "<= ", "gt": "> ", "ge": ">= "}
        return f"{sym.get(c.relation, '')}{_fmt(c.value)}{u}"
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
            claimed = f"{_fmt(c.a_value)} {c.unit} vs {_fmt(c.b_value)} {c.unit}"
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
