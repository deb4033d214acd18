"""The server's account of a load level: /metrics parsed, counters differenced at
the level's edges, and the rule that says what bound the level. Hand-computed
answers; the real server's numbers are checked in test_serving_engine."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from slmstudy.experiments import serving_bounds as sb
from slmstudy.results import serving_tables
from slmstudy.telemetry import server_metrics

PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="my model {x}"} 3.0
vllm:num_requests_running{engine="1",model_name="my model {x}"} 2.0
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
vllm:num_requests_waiting{engine="1",model_name="m"} 0.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="m",reason="capacity"} 7.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.5
vllm:num_preemptions_total{engine="0",model_name="m"} 0.0
vllm:generation_tokens_total{engine="0",model_name="m"} 1024.0
vllm:generation_tokens_created{engine="0",model_name="m"} 1.7e+09
vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} 8.0
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 2.0
vllm:iteration_tokens_total_bucket{engine="0",le="1.0",model_name="m"} 5.0
vllm:iteration_tokens_total_bucket{engine="0",le="+Inf",model_name="m"} 40.0
vllm:iteration_tokens_total_count{engine="0",model_name="m"} 40.0
vllm:iteration_tokens_total_sum{engine="0",model_name="m"} 1100.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="m"} 0.5
vllm:request_queue_time_seconds_count{engine="0",model_name="m"} 10.0
process_cpu_seconds_total 12.5
"""


def test_parse_sums_label_sets_takes_the_fullest_cache_and_ignores_buckets():
    got = server_metrics.parse(PAGE)
    assert got == {
        "srv_running": 5.0,  # 3 + 2 over two engines
        "srv_waiting": 1.0,  # the by-reason series is another name, not added in
        "srv_kv_cache_usage": 0.5,  # the fuller engine, not 0.75
        "srv_preemptions": 0.0,
        "srv_generation_tokens": 1024.0,  # not the _created timestamp
        "srv_requests_finished": 10.0,  # 8 length + 2 stop
        "srv_engine_steps": 40.0,
        "srv_step_tokens": 1100.0,
        "srv_queue_time_s": 0.5,
        "srv_queued_requests": 10.0,
    }  # series the page lacks (prefix cache, prompt tokens) are absent, not 0


def test_parse_reads_the_older_cache_gauge_name_and_skips_junk():
    got = server_metrics.parse('vllm:gpu_cache_usage_perc{engine="0"} 0.9\nnot a metric line\nvllm:x{a="b"}\n\n')
    assert got == {"srv_kv_cache_usage": 0.9}


class _Page(BaseHTTPRequestHandler):
    count = 0

    def do_GET(self) -> None:  # noqa: N802
        type(self).count += 1
        body = PAGE.replace("1024.0", f"{1024 + 10 * type(self).count}.0").encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_scraper_thread_writes_timed_rows_and_its_own_cost(tmp_path):
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{http.server_address[1]}"
        scraper = server_metrics.Scraper(url + "/metrics", tmp_path / "m.jsonl", interval_s=0.02)
        scraper.start()
        import time

        time.sleep(0.3)
        scraper.stop()
        with server_metrics.client() as c:
            missing = server_metrics.scrape_once(c, url + "/nope")
    finally:
        http.shutdown()
    samples, cost = serving_tables.load_metrics(tmp_path / "m.jsonl")
    assert 5 <= len(samples) == cost["srv_scrapes_total"] and cost["srv_scraper_cpu_s"] >= 0
    assert samples["t"].is_monotonic_increasing and (samples["scrape_s"] > 0).all()
    assert samples["srv_generation_tokens"].is_monotonic_increasing  # each read a fresh page
    assert missing["scrape_error"].startswith("HTTPStatusError") and "srv_running" not in missing


def _edge(edge, mode, level, t, **values):
    return {"type": "server_metrics", "edge": edge, "mode": mode, "level": level, "t": t, **values}


def test_edge_deltas_and_the_level_view():
    start = dict(srv_generation_tokens=100, srv_prompt_tokens=50, srv_requests_finished=4, srv_preemptions=0,
                 srv_engine_steps=200, srv_step_tokens=300, srv_queue_time_s=1.0, srv_queued_requests=4,
                 srv_prefix_cache_queries=50, srv_prefix_cache_hits=0, srv_inference_time_s=3.0)
    end = dict(srv_generation_tokens=612, srv_prompt_tokens=178, srv_requests_finished=8, srv_preemptions=1,
               srv_engine_steps=330, srv_step_tokens=940, srv_queue_time_s=1.2, srv_queued_requests=8,
               srv_prefix_cache_queries=178, srv_prefix_cache_hits=32, srv_inference_time_s=9.0)
    records = [_edge("start", "concurrency", 4.0, 10.0, **start), _edge("end", "concurrency", 4.0, 12.5, **end),
               _edge("start", "rate", 2.0, 13.0, **end)]  # a level that never ended: no row
    d = serving_tables.edge_deltas(records).iloc[0]
    assert len(serving_tables.edge_deltas(records)) == 1
    assert d["srv_generation_tokens_delta"] == 512 and d["srv_prompt_tokens_delta"] == 128
    assert d["srv_requests_finished_delta"] == 4 and d["srv_preemptions_delta"] == 1
    assert d["srv_engine_steps_delta"] == 130
    assert d["srv_tokens_per_step"] == pytest.approx(640 / 130)
    assert d["srv_queue_time_mean_s"] == pytest.approx(0.05)  # 0.2 s over 4 requests
    assert d["srv_prefix_cache_hit_share"] == pytest.approx(0.25)  # 32 of 128 looked-up tokens
    assert d["srv_edge_window_s"] == 2.5
    metrics = pd.DataFrame({"t": [10.5, 11.0, 11.5, 12.0, 13.0], "scrape_s": [0.01, 0.02, 0.03, 0.04, 9.0],
                            "srv_running": [2, 4, 4, 2, 99], "srv_waiting": [0, 1, 0, 0, 99],
                            "srv_kv_cache_usage": [0.1, 0.3, 0.2, 0.1, 1.0]})
    levels = pd.DataFrame([{"mode": "concurrency", "level": 4.0, "t0": 10.2, "t1": 12.2, "duration_s": 2.0}])
    row = serving_tables.with_server_view(levels, records, metrics).iloc[0]
    assert row["srv_step_rate_hz"] == 65.0  # 130 steps in 2 s
    assert row["engine_running_avg"] == pytest.approx(3.0)  # 6 request-seconds RUNNING in 2 s
    assert row["engine_waiting_avg"] == pytest.approx(0.1)  # 0.2 request-seconds WAITING in 2 s
    assert row["srv_scrapes"] == 4 and row["srv_scrape_p50_s"] == pytest.approx(0.025)  # the read at 13.0 is outside
    assert row["srv_running_mean"] == 3.0 and row["srv_running_max"] == 4
    assert row["srv_waiting_mean"] == 0.25 and row["srv_kv_cache_usage_max"] == 0.3


def _row(**kw):
    base = dict(srv_preemptions_delta=0, srv_kv_cache_usage_max=0.2, engine_waiting_avg=0.0,
                srv_queue_time_mean_s=0.001, ttft_mean_s=0.05, client_cpu_s=1.0, duration_s=10.0,
                client_in_flight_avg=8.0, engine_running_avg=7.5, util_gpu_pct_mean=95.0, proc_cpu_pct_mean=60.0,
                cpu_pct_mean=30.0)
    return {**base, **kw}


@pytest.mark.parametrize("changes, bound", [
    ({}, "GPU"),
    ({"srv_preemptions_delta": 2}, "KV cache"),
    ({"srv_kv_cache_usage_max": 0.93}, "KV cache"),
    # waiting but a short queue (a request waits for the running step): not queue-bound
    ({"engine_waiting_avg": 3.0, "srv_queue_time_mean_s": 0.02}, "GPU"),
    ({"engine_waiting_avg": 3.0, "srv_queue_time_mean_s": 0.03}, "queue"),  # 30 of 50 ms queued
    ({"engine_waiting_avg": 0.5, "srv_queue_time_mean_s": 0.04}, "GPU"),  # queued long, but rarely anyone waiting
    ({"client_cpu_s": 9.5}, "client"),  # 0.95 CPU-s per second
    ({"client_in_flight_avg": 0.6, "engine_running_avg": 0.5}, "arrivals"),
    # 8 outstanding, 3.9 of them in the engine: the front end held the rest
    ({"engine_running_avg": 3.9}, "front end"),
    ({"engine_running_avg": 3.0, "engine_waiting_avg": 1.0}, "GPU"),  # 4 of 8 in the engine: not below half
    ({"util_gpu_pct_mean": 70.0, "proc_cpu_pct_mean": 99.0}, "host"),
    ({"util_gpu_pct_mean": 70.0}, "unclear"),
    ({"util_gpu_pct_mean": float("nan"), "cpu_pct_mean": 97.0}, "CPU"),
    ({"util_gpu_pct_mean": float("nan")}, "unclear"),
    # a run without server metrics is still judged by the later steps
    ({"srv_preemptions_delta": None, "srv_kv_cache_usage_max": None, "engine_running_avg": None,
      "engine_waiting_avg": None}, "GPU"),
])
def test_the_rule_first_match_wins(changes, bound):
    got, why = sb.level_bound(_row(**changes))
    assert got == bound and why


def test_bound_reasons_quote_the_numbers():
    assert sb.level_bound(_row(engine_waiting_avg=3.0, srv_queue_time_mean_s=0.03))[1] == \
        "3.0 requests waiting on average; 30 of 50 ms to first token spent queued"
    assert sb.level_bound(_row(util_gpu_pct_mean=70.0, proc_cpu_pct_mean=99.0))[1] == \
        "utilization.gpu 70% while the server's processes used 99% of a core"


def test_in_flight_counts_each_request_on_its_half_open_span():
    req = pd.DataFrame({"t_send": [0.0, 0.5, 1.0], "t_end": [1.0, 2.0, 1.5]})
    np.testing.assert_array_equal(sb.in_flight(req, np.array([-0.1, 0.0, 0.7, 1.0, 1.2, 1.5, 2.0])),
                                  [0, 1, 2, 2, 2, 1, 0])


def test_token_check_flags_a_level_where_client_and_server_differ():
    levels = pd.DataFrame({"model": ["m", "m"], "mode": ["concurrency"] * 2, "level": [1.0, 2.0],
                           "completed": [4, 4], "srv_requests_finished_delta": [4, 4],
                           "output_tokens": [128, 128], "srv_generation_tokens_delta": [128, 127]})
    check = sb.token_check(levels)
    assert list(check["agrees"]) == [True, False]
    assert sb.token_verdict(check) == ("client and server disagree on 1 of 2 levels, e.g. m concurrency 2: "
                                       "client 128 tokens / 4 requests, server 127 / 4")
    assert sb.token_verdict(sb.token_check(levels.iloc[:1])).startswith("client and server agree on every level: 128")
    assert sb.token_check(levels.drop(columns=["srv_generation_tokens_delta"])).empty


def test_metrics_file_after_a_crash_has_no_closing_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text(json.dumps({"t": 1.0, "scrape_s": 0.01, "srv_running": 1}) + "\n{\"t\": 2.0, \"scr")
    samples, cost = serving_tables.load_metrics(p)
    assert len(samples) == 1 and cost == {}


def test_read_bias_weighs_levels_by_their_reads():
    levels = pd.DataFrame({"model": ["m", "m"], "mode": ["concurrency"] * 2, "level": [1.0, 4.0],
                           "srv_scrapes": [2, 6], "srv_running_mean": [0.0, 2.0], "engine_running_avg": [0.8, 3.0]})
    bias = sb.read_bias(levels)
    assert list(bias["reads - average"]) == pytest.approx([-0.8, -1.0])
    # weighted by reads: (0 x 2 + 2 x 6) / 8 = 1.5 against (0.8 x 2 + 3 x 6) / 8 = 2.45
    assert sb.read_bias_verdict(bias) == ("over 8 reads in 2 levels the running gauge read 1.50 requests on average "
                                          "where the counters say 2.45; the largest gap is -1.00 (m, concurrency 4)")
