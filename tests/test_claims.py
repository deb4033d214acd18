"""The articles' claims: the shipped file is valid and complete, bad entries are
rejected with a message naming the claim and the key, and ``judge`` gives the
verdict each kind of claim should get from hand-made measurement tables."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from slmstudy import claims, paths
from slmstudy.claims import ClaimsError
from slmstudy.claims.schema import KINDS

SEEDS = paths.project_root() / "docs" / "seeds"  # copies of ../shared/seeds
H100 = "NVIDIA H100 80GB HBM3"
DS, LL = "deepseek-r1-distill-qwen-1.5b", "llama-3.2-1b-instruct"

# Every claim of shared/seeds/README.md, as the README words it, and the entries
# that encode it. Adding a claim to the README without an entry here fails
# test_readme_numbers_are_all_mapped; removing an entry fails test_readme_claims_have_entries.
README_CLAIMS: list[tuple[str, list[str]]] = [
    # 000
    ("DeepSeek FP16 ~3.0 GB", ["a000-weights-deepseek-fp16"]),
    ("GGUF Q4 ~0.8 GB", ["a000-gguf-q4-deepseek"]),
    ("needs 4 GB", ["a000-deepseek-min-4gb"]),
    ("(6 GB recommended)", ["a000-deepseek-rec-6gb"]),
    ("3.2 GB at vLLM start", ["a000-start-mem-deepseek"]),
    ('"Llama3-1B" FP16 ~2.1 GB', ["a000-weights-llama-fp16"]),
    ("GGUF Q4 ~0.6 GB", ["a000-gguf-q4-llama"]),
    ("2.8-3.5 GB in vLLM", ["a000-vllm-mem-llama"]),
    ("Context 4,096 vs 8,192 tokens", ["a000-context-deepseek", "a000-context-llama"]),
    ("Table (DeepSeek vs Llama3-1B): load 8.2 s vs 6.5 s", ["a000-load-time"]),
    ("start memory FP16 3.2 GB vs 2.8 GB", ["a000-start-mem-cmp", "a000-start-mem-deepseek", "a000-start-mem-llama"]),
    ("single-request TTFT 140 ms vs 190 ms", ["a000-ttft"]),
    ("mean output speed 198 vs 142 tok/s",
     ["a000-speed-b1", "a000-speed-b1-roofline-deepseek", "a000-speed-b1-roofline-llama"]),
    ("batch-4 throughput 680 vs 490 tok/s", ["a000-throughput-b4"]),
    ('KV-cache efficiency "high (compact)" vs "medium (redundant)"', ["a000-kv-efficiency"]),
    ('tensor parallel yes vs "no (most versions)"', ["a000-tp-deepseek", "a000-tp-llama"]),
    ("PagedAttention yes vs yes", ["a000-paged-deepseek", "a000-paged-llama"]),
    ("MATH subset (50 medium problems): complete reasoning chain 85% vs 52%", ["a000-math-subset-chain"]),
    ("correct answers 82% vs 61%", ["a000-math-subset-correct"]),
    ("DeepSeek leads on GPU utilisation, throughput and latency across the board",
     ["a000-gpu-util", "a000-throughput-b4", "a000-ttft"]),
    ("more so under concurrency", ["a000-concurrency-advantage", "a000-concurrency-own-table"]),
    ('"batch up to 16"', ["a000-serving-batch16"]),
    ('"average latency < 200 ms"', ["a000-serving-latency-ttft", "a000-serving-latency-e2e"]),
    ("the article says no official Llama 3 1B exists; Meta did release Llama-3.2-1B(-Instruct), the honest stand-in",
     ["a000-no-official-llama-1b"]),
    # 001
    ("Model card: 1.5B dense", ["a001-params-1.5b"]),
    ("FP16 3.0 GB, GGUF-Q4 0.8 GB", ["a001-weights-fp16", "a001-gguf-q4"]),
    ("4,096 context", ["a001-context"]),
    ("MATH 80+", ["a001-math-80"]),
    ("HumanEval 50+", ["a001-humaneval-50"]),
    ("Speed (100 input tokens, 512 output): RTX 3060 FP16 2.6 s ~200 tok/s",
     ["a001-time-rtx3060", "a001-speed-rtx3060", "a001-speed-rtx3060-consistency", "a001-speed-rtx3060-roofline"]),
    ("M1 Mac (Metal) 3.1 s ~165 tok/s", ["a001-speed-m1", "a001-speed-m1-consistency"]),
    ("iPhone 15 Pro Q4_K_M 4.2 s ~120 tok/s", ["a001-speed-iphone", "a001-speed-iphone-consistency"]),
    ("RK3588 INT4 16 s ~62 tok/s (512/16 s is 32 tok/s: inconsistent)",
     ["a001-speed-rk3588", "a001-speed-rk3588-consistency"]),
    # 002
    ("peak memory 9.8 GB vs 2.6 GB (-73.5%)", ["a002-peak-mem", "a002-peak-mem-pct"]),
    ("TTFT 142 ms vs 98 ms (-31.0%)", ["a002-ttft", "a002-ttft-pct"]),
    ("mean generation speed 89 vs 132 tok/s (+48.3%)", ["a002-speed", "a002-speed-pct", "a002-speed-roofline-fp32"]),
    ("batch-4 throughput 210 vs 340 req/min (+61.9%)", ["a002-throughput-b4", "a002-throughput-pct"]),
    ("semantic similarity to FP32 0.94 (BERTScore)", ["a002-similarity"]),
    ('"INT8 cuts memory 75% vs FP32"', ["a002-int8-75pct"]),
    ("85%+ of the teacher's accuracy kept (C4)", ["a002-teacher-85pct"]),
    ("+12-15 F1 points in legal/medical domains", ["a002-domain-f1"]),
    ("temperature 0.5-0.7 (0.6)", ["a002-temperature-advice"]),
    ("no system prompt", ["a002-prompt-advice"]),
    ("start the answer with", ["a002-prompt-advice"]),
    ("repeat runs and average", ["a002-repeat-runs"]),
    ("Worked example: f(x) = x^2 + 2x + 1, f(3) = 16, same answer in both precisions",
     ["a002-f3-arithmetic", "a002-f3-same-answer"]),
]

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _readme_bullets() -> list[str]:
    """The README's claim bullets ("- ..." and their indented continuation lines)."""
    bullets: list[str] = []
    for line in (SEEDS / "README.md").read_text().splitlines():
        if line.startswith("- "):
            bullets.append(line[2:])
        elif line.startswith("  ") and bullets:
            bullets[-1] += " " + line.strip()
    return [_norm(b) for b in bullets]


# ------------------------------------------------------------- shipped file
@pytest.fixture(scope="module")
def shipped():
    return claims.load()


def test_shipped_file_loads_with_every_kind(shipped):
    assert {c.kind for c in shipped} == set(KINDS)
    assert {c.article for c in shipped} == {"000", "001", "002"}


def test_ids_are_unique(shipped):
    ids = [c.id for c in shipped]
    assert len(ids) == len(set(ids))


def test_readme_claims_have_entries(shipped):
    ids = {c.id for c in shipped}
    missing = [(text, i) for text, want in README_CLAIMS for i in want if i not in ids]
    assert not missing, f"README claims whose entries are missing: {missing}"


def test_readme_claims_are_quoted_from_the_readme():
    text = _norm((SEEDS / "README.md").read_text())
    assert [t for t, _ in README_CLAIMS if _norm(t) not in text] == []


# Digits that are part of a name (FP32, INT8, Q4, Llama3-1B, C4), not a claimed number.
_NAME = re.compile(r"[A-Za-z]+\d[\w.-]*")


def test_readme_numbers_are_all_mapped():
    """Every number in the README's claim bullets lies inside a mapped README_CLAIMS text."""
    texts = sorted((_norm(t) for t, _ in README_CLAIMS), key=len, reverse=True)
    unmapped = []
    for bullet in _readme_bullets():
        rest = bullet
        for t in texts:
            rest = rest.replace(t, " ")
        unmapped += [(n, bullet[:50]) for n in _NUMBER.findall(_NAME.sub(" ", rest))]
    assert not unmapped, f"README numbers no entry covers: {unmapped}"


def test_originals_are_verbatim_quotes(shipped):
    texts = {p.name[:3]: _norm(p.read_text()) for p in SEEDS.glob("00*_*.txt")}
    wrong = [(c.id, frag) for c in shipped for frag in c.original.split(" … ") if _norm(frag) not in texts[c.article]]
    assert wrong == []


def test_arithmetic_is_computed_not_typed(shipped):
    by_id = {c.id: c for c in shipped}
    assert by_id["a001-speed-rk3588-consistency"].computed() == 32.0  # 512 tokens / 16 s, not ~62
    assert by_id["a002-peak-mem-pct"].computed() == pytest.approx(-73.47, abs=0.01)
    assert by_id["a002-speed-pct"].computed() == pytest.approx(48.31, abs=0.01)
    assert by_id["a002-int8-75pct"].computed() == pytest.approx(73.47, abs=0.01)
    assert by_id["a001-speed-iphone-consistency"].computed() == pytest.approx(121.90, abs=0.01)  # 512 / 4.2
    # 51.2e9 B/s over 1,543,714,304 non-embedding weights x 4.5 / 8 bytes = 868,339,296 B per token: 58.96 tok/s
    assert by_id["a001-speed-iphone-bandwidth"].computed() == pytest.approx(58.96, abs=0.01)
    # the GGUF sizes are measured files now (06_edge), not a floor computed from the parameter count
    assert by_id["a000-gguf-q4-deepseek"].metric == "gguf_q4_k_m_file_gb"


def test_shipped_claims_judge_without_measurements(shipped):
    """With nothing measured every measured claim is untestable; arithmetic still judged."""
    empty = pd.DataFrame(columns=claims.MEASUREMENT_COLUMNS)
    out = claims.judge(shipped, empty, H100).set_index("id")
    assert len(out) == len(shipped) and set(out["verdict"]) <= set(claims.VERDICTS)
    measured = [c.id for c in shipped if c.kind in ("absolute", "comparative", "qualitative")]
    assert (out.loc[measured, "verdict"] == "untestable").all()
    assert out.loc[measured, "reason"].str.startswith("not measured in this run (metric ").all()
    assert out.loc["a001-speed-rk3588-consistency", "verdict"] == "contradicted"
    assert "= 32 tok/s" in out.loc["a001-speed-rk3588-consistency", "reason"]
    assert out.loc["a002-speed-pct", "verdict"] == "holds"
    assert out.loc["a002-int8-75pct", "verdict"] == "contradicted"
    assert out.loc["a000-concurrency-own-table", "verdict"] == "contradicted"


# ------------------------------------------------------------------ schema
BASE = {"article": "000", "claim": "c", "original": "o", "hardware": None, "software": None}
ABSOLUTE = {**BASE, "id": "a000-abs", "kind": "absolute", "metric": "weights_gib",
            "select": {"model": DS, "precision": "bf16"}, "value": 3.0, "unit": "GB",
            "hardware_independent": True}
COMPARATIVE = {**BASE, "id": "a000-cmp", "kind": "comparative", "metric": "output_tok_s_b1",
               "a": {"model": DS, "precision": "bf16"}, "b": {"model": LL, "precision": "bf16"},
               "a_value": 198.0, "b_value": 142.0, "unit": "tok/s", "hardware": "NVIDIA RTX 3060 12GB"}


def _load(tmp_path: Path, *entries: dict) -> list:
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(list(entries), allow_unicode=True))
    return claims.load(path)


def _problems(tmp_path: Path, *entries: dict) -> list[str]:
    with pytest.raises(ClaimsError) as exc:
        _load(tmp_path, *entries)
    return exc.value.problems


def test_unknown_key_names_claim_key_and_allowed(tmp_path):
    [msg] = _problems(tmp_path, {**ABSOLUTE, "valeu": 3})
    assert msg.startswith("claims.yaml: claim 'a000-abs': unknown key 'valeu' for an absolute claim")
    assert "value" in msg and "hardware_independent" in msg


def test_unknown_metric_is_named(tmp_path):
    [msg] = _problems(tmp_path, {**ABSOLUTE, "metric": "ttft_ms"})
    assert "claim 'a000-abs'" in msg and "key 'metric'" in msg and "unknown metric 'ttft_ms'" in msg
    assert "ttft_b1_s" in msg


def test_unknown_model_and_precision_are_named(tmp_path):
    msgs = _problems(tmp_path, {**ABSOLUTE, "select": {"model": "gpt-5", "precision": "int2"}})
    assert any("claim 'a000-abs'" in m and "key 'select.model'" in m and "unknown model 'gpt-5'" in m for m in msgs)
    assert any("key 'select.precision'" in m and "unknown precision 'int2'" in m for m in msgs)


def test_fields_of_another_kind_are_rejected(tmp_path):
    msgs = _problems(tmp_path, {**ABSOLUTE, "a_value": 3.2})
    assert msgs == [m for m in msgs if "unknown key 'a_value' for an absolute claim" in m] and msgs
    msgs = _problems(tmp_path, {**{k: v for k, v in COMPARATIVE.items() if k not in ("a", "b")},
                                "select": {"model": DS, "precision": "bf16"}})
    assert any("claim 'a000-cmp': missing required key 'a' for a comparative claim" in m for m in msgs)
    assert any("unknown key 'select' for a comparative claim" in m for m in msgs)


def test_untestable_needs_a_reason_and_arithmetic_an_expression(tmp_path):
    [msg] = _problems(tmp_path, {**BASE, "id": "a000-u", "kind": "untestable"})
    assert msg == "claims.yaml: claim 'a000-u': missing required key 'reason' for an untestable claim"
    msgs = _problems(tmp_path, {**BASE, "id": "a000-ar", "kind": "arithmetic", "result": "r", "value": 1.0,
                                "unit": None, "inputs": {"a": 1.0}})
    assert msgs == ["claims.yaml: claim 'a000-ar': missing required key 'expression' for an arithmetic claim"]


def test_cross_key_rules(tmp_path):
    msgs = _problems(
        tmp_path,
        {**ABSOLUTE, "select": {"model": DS}},  # weights depend on the precision
        {**ABSOLUTE, "id": "a000-unit", "unit": "ms"},  # a time for a memory metric
        {**ABSOLUTE, "id": "a001-wrong-article"},  # id names another article
        {**COMPARATIVE, "b_value": 198.0},  # no direction
        {**BASE, "id": "a000-q", "kind": "qualitative", "metric": "tensor_parallel_supported", "stated": "yes",
         "select": {"model": LL}, "relation": "eq", "value": 1.0, "unit": "flag", "direction": "higher"},
        {**BASE, "id": "a000-ar", "kind": "arithmetic", "result": "r", "expression": "a / b + open(1)",
         "inputs": {"a": 1.0}, "value": 1.0, "unit": None},
        {**BASE, "id": "a000-ar2", "kind": "arithmetic", "result": "r", "expression": "a / b",
         "inputs": {"a": 1.0, "c": 2.0}, "value": 1.0, "unit": None},
    )
    assert any("'a000-abs'" in m and "depends on the precision" in m for m in msgs)
    assert any("'a000-unit'" in m and "unit 'ms' does not measure" in m for m in msgs)
    assert any("'a001-wrong-article'" in m and "must start with 'a000-'" in m for m in msgs)
    assert any("'a000-cmp'" in m and "needs a direction" in m for m in msgs)
    assert any("'a000-q'" in m and "either select + relation + value + unit" in m for m in msgs)
    assert any("'a000-ar'" in m and "not Call" in m for m in msgs)
    assert any("'a000-ar2'" in m and "undefined names: b" in m and "not used by the expression: c" in m for m in msgs)


def test_wrong_types_are_not_coerced(tmp_path):
    [msg] = _problems(tmp_path, {**ABSOLUTE, "article": 0})
    assert "key 'article'" in msg and "(got 0)" in msg


def test_duplicate_ids_are_rejected(tmp_path):
    [msg] = _problems(tmp_path, ABSOLUTE, ABSOLUTE)
    assert msg == "claims.yaml: claim 'a000-abs': id used more than once"


# ------------------------------------------------------------------- judge
def _m(metric, value, *, model=None, precision=None, lo=math.nan, hi=math.nan, n=1, unit):
    return {"metric": metric, "model": model, "precision": precision, "value": value, "lo": lo, "hi": hi,
            "n": n, "unit": unit, "source": "hand-made"}


def _judge(tmp_path, entries, rows) -> pd.DataFrame:
    meas = pd.DataFrame(rows, columns=claims.MEASUREMENT_COLUMNS)
    return claims.judge(_load(tmp_path, *entries), meas, H100).set_index("id")


def test_absolute_hardware_independent_holds_or_is_contradicted_across_units(tmp_path):
    # 3.0 GB = 2.79 GiB; 2.9 GiB is within 10%, 3.34 GiB is not
    out = _judge(tmp_path, [ABSOLUTE], [_m("weights_gib", 2.9, model=DS, precision="bf16", unit="GiB")])
    assert out.loc["a000-abs", "verdict"] == "holds"
    assert out.loc["a000-abs", "ratio"] == pytest.approx(2.9 / (3e9 / 2**30))
    out = _judge(tmp_path, [ABSOLUTE], [_m("weights_gib", 3.34, model=DS, precision="bf16", unit="GiB")])
    assert out.loc["a000-abs", "verdict"] == "contradicted"
    assert "does not depend on the GPU" in out.loc["a000-abs", "reason"]


def test_absolute_on_another_gpu_is_not_comparable(tmp_path):
    entry = {**ABSOLUTE, "id": "a001-speed", "article": "001", "metric": "tok_s_100in_512out", "value": 200.0,
             "unit": "tok/s", "hardware": "NVIDIA RTX 3060", "hardware_independent": False}
    out = _judge(tmp_path, [entry], [_m("tok_s_100in_512out", 400.0, model=DS, precision="bf16", unit="tok/s")])
    row = out.loc["a001-speed"]
    assert row["verdict"] == "not comparable"
    assert row["reason"] == f"different GPU (NVIDIA RTX 3060 vs {H100}): shown, not judged"
    assert row["ratio"] == pytest.approx(2.0) and row["ours"].startswith("400")


def test_absolute_on_our_gpu_or_any_gpu_is_judged(tmp_path):
    same = {**ABSOLUTE, "id": "a000-same", "metric": "ttft_b1_s", "value": 20.0, "unit": "ms",
            "hardware": "H100", "hardware_independent": False}
    anygpu = {**ABSOLUTE, "id": "a000-any", "metric": "serving_mean_ttft_s_c16", "value": 200.0, "unit": "ms",
              "relation": "lt", "hardware_independent": False, "any_gpu": True}
    out = _judge(tmp_path, [same, anygpu], [
        _m("ttft_b1_s", 0.021, lo=0.020, hi=0.022, n=5, model=DS, precision="bf16", unit="s"),
        _m("serving_mean_ttft_s_c16", 0.35, model=DS, precision="bf16", unit="s"),
    ])
    assert out.loc["a000-same", "verdict"] == "holds"
    assert out.loc["a000-any", "verdict"] == "contradicted"
    assert "names no GPU; judged on" in out.loc["a000-any", "reason"]


def test_comparative_direction_holds_reversed_or_within_noise(tmp_path):
    def run(ds, ll):
        return _judge(tmp_path, [COMPARATIVE], [
            _m("output_tok_s_b1", ds[0], lo=ds[1], hi=ds[2], n=5, model=DS, precision="bf16", unit="tok/s"),
            _m("output_tok_s_b1", ll[0], lo=ll[1], hi=ll[2], n=5, model=LL, precision="bf16", unit="tok/s"),
        ]).loc["a000-cmp"]

    row = run((400, 398, 402), (300, 299, 301))
    assert row["verdict"] == "holds" and row["reason"].startswith("direction holds")
    assert row["ratio"] == pytest.approx(4 / 3) and row["claimed_ratio"] == pytest.approx(198 / 142)
    row = run((300, 299, 301), (390, 388, 392))
    assert row["verdict"] == "contradicted" and row["reason"].startswith("direction reversed")
    assert "only the direction is judged" in row["reason"]  # RTX 3060 vs H100
    # overlapping 95% intervals: the data cannot tell the claimed difference from
    # noise, which does not make it false: not supported
    row = run((301, 295, 307), (300, 296, 304))
    assert row["verdict"] == "not supported" and row["reason"].startswith("no difference beyond noise")


def test_qualitative_flag_and_direction(tmp_path):
    flag = {**BASE, "id": "a000-tp", "kind": "qualitative", "metric": "tensor_parallel_supported",
            "stated": "no (most versions)", "select": {"model": LL}, "relation": "eq", "value": 0.0, "unit": "flag",
            "hardware_independent": True}
    kv = {**BASE, "id": "a000-kv", "kind": "qualitative", "metric": "kv_bytes_per_token", "stated": "high vs medium",
          "a": {"model": DS, "precision": "bf16"}, "b": {"model": LL, "precision": "bf16"}, "direction": "lower",
          "hardware_independent": True}
    out = _judge(tmp_path, [flag, kv], [
        _m("tensor_parallel_supported", 1.0, model=LL, unit="flag"),
        _m("kv_bytes_per_token", 28672.0, model=DS, precision="bf16", unit="B"),
        _m("kv_bytes_per_token", 32.0, model=LL, precision="bf16", unit="KiB"),
    ])
    assert out.loc["a000-tp", "verdict"] == "contradicted"
    assert out.loc["a000-kv", "verdict"] == "holds"
    assert out.loc["a000-kv", "ratio"] == pytest.approx(28 / 32)


def test_rows_without_model_or_precision_apply_to_all(tmp_path):
    entry = {**ABSOLUTE, "metric": "max_context_tokens", "select": {"model": DS}, "value": 4096.0,
             "unit": "tokens", "relation": "eq"}
    out = _judge(tmp_path, [entry], [_m("max_context_tokens", 131072.0, unit="tokens")])
    assert out.loc["a000-abs", "verdict"] == "contradicted"
    assert out.loc["a000-abs", "ratio"] == 32.0


def test_precision_free_metric_matches_rows_that_name_a_precision(tmp_path):
    entry = {**ABSOLUTE, "metric": "params_total", "select": {"model": LL}, "value": 1e9, "unit": "params"}
    rows = [_m("params_total", 1235814400.0, model=LL, precision=p, unit="params") for p in ("bf16", "fp32")]
    rows.append(_m("params_total", 1777088000.0, model=DS, precision="bf16", unit="params"))
    out = _judge(tmp_path, [entry], rows)
    assert out.loc["a000-abs", "ratio"] == pytest.approx(1.2358144)
    assert out.loc["a000-abs", "verdict"] == "contradicted"


def test_untestable_and_missing_metric(tmp_path):
    untestable = {**BASE, "id": "a000-math", "kind": "untestable", "a_value": 85.0, "b_value": 52.0, "unit": "%",
                  "reason": "needs the real weights and the MATH data set"}
    out = _judge(tmp_path, [untestable, COMPARATIVE], [
        _m("output_tok_s_b1", 400.0, model=DS, precision="bf16", unit="tok/s"),
    ])
    assert out.loc["a000-math", "verdict"] == "untestable"
    assert out.loc["a000-math", "reason"] == "needs the real weights and the MATH data set"
    assert out.loc["a000-math", "claimed"] == "85 % vs 52 %"
    assert out.loc["a000-cmp", "verdict"] == "untestable"
    nan_row = _m("output_tok_s_b1", math.nan, model=LL, precision="bf16", unit="tok/s")
    again = _judge(tmp_path, [COMPARATIVE], [_m("output_tok_s_b1", 400.0, model=DS, precision="bf16", unit="tok/s"),
                                             nan_row])
    assert again.loc["a000-cmp", "verdict"] == "untestable"
    assert out.loc["a000-cmp", "reason"].startswith("not measured in this run (metric output_tok_s_b1 missing")
    assert "Llama-3.2-1B-Instruct" in out.loc["a000-cmp", "reason"]


def test_arithmetic_inconsistency(tmp_path):
    entry = {**BASE, "id": "a001-rk", "article": "001", "kind": "arithmetic", "result": "512 tokens over 16 s",
             "expression": "tokens / seconds", "inputs": {"tokens": 512.0, "seconds": 16.0}, "value": 62.0,
             "unit": "tok/s"}
    out = _judge(tmp_path, [entry], [])
    row = out.loc["a001-rk"]
    assert row["verdict"] == "contradicted"
    assert row["reason"].startswith("internally inconsistent: 512 tokens over 16 s is 512 / 16 = 32 tok/s")
    assert row["claimed"] == "~62 tok/s"


def test_measurement_table_errors_are_loud(tmp_path):
    with pytest.raises(ValueError, match="lack columns"):
        claims.judge([], pd.DataFrame({"metric": []}), H100)
    with pytest.raises(ValueError, match="2 different rows for metric 'weights_gib'"):
        _judge(tmp_path, [ABSOLUTE], [_m("weights_gib", v, model=DS, precision="bf16", unit="GiB") for v in (3, 4)])
    with pytest.raises(ValueError, match="cannot convert"):
        _judge(tmp_path, [ABSOLUTE], [_m("weights_gib", 3.0, model=DS, precision="bf16", unit="s")])


def test_a_device_fact_names_the_known_devices(tmp_path):
    entry = {"id": "a001-x", "article": "001", "kind": "arithmetic", "claim": "c", "original": "o",
             "hardware": None, "software": None, "result": "r", "expression": "b * 2",
             "inputs": {"b": {"device_bandwidth_gb_s": "pixel-9"}}, "value": 1, "unit": "tok/s"}
    msgs = _problems(tmp_path, entry)
    assert any("unknown device 'pixel-9'" in m and "a17-pro" in m and "rk3588" in m for m in msgs), msgs
