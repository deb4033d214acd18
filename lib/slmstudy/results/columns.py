"""Every column of the study's tables: its unit, the label a reader sees and what
it means. Tables, figure labels and the notebooks' displays read names from here;
``docs/columns.md`` is generated from it (``python -m slmstudy docs``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    label: str  # what a table header or axis says
    unit: str  # "" for text, counts and flags
    meaning: str
    tables: tuple[str, ...]

    @property
    def header(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


R, Q, C, L, B, T, X = "runs", "requests", "configs", "levels", "bench", "timing", "comparison"
S = "server_metrics"
A = "analyses"  # columns the notebooks' analyses compute from the tables

COLUMNS: dict[str, Column] = {
    # identity of a row
    "config": Column("configuration", "", "the job key: model__precision__weights[__cold][__roundN]", (R, Q, C, L, B, T)),
    "model": Column("model", "", "catalog key of the model", (R, Q, C, L, B, X)),
    "precision": Column("precision", "", "catalog key of the precision (bf16, int8, ...)", (R, Q, C, L, B, X)),
    "weights": Column("weights", "", "dummy (random values on the real architecture) or pretrained", (R, Q, C, L)),
    "point": Column("point", "", "the workload point's name in this notebook's parameters", (R, Q, X)),
    "point_shape": Column("point shape", "", "digest of (batch, input_len, output_len, temperature): one measurement "
                          "whatever notebooks call it", (R, Q)),
    "batch": Column("batch", "requests", "requests submitted at once", (R, Q, B)),
    "input_len": Column("input", "tokens", "prompt length", (R, B)),
    "output_len": Column("output", "tokens", "generated tokens per request (fixed, ignore_eos)", (R, B)),
    "rep": Column("repetition", "", "index of the measured repetition (warm-ups excluded)", (R, Q)),
    # speed
    "output_tok_s": Column("output tokens/s", "tok/s", "all output tokens of the batch over its wall time", (R, L, X)),
    "req_per_min": Column("requests/min", "req/min", "requests of the batch per minute of its wall time", (R,)),
    "slot": Column("slot", "", "the devices a job ran on when the study spread its jobs over several "
                   "(run --devices): cuda:0,1 or cpu:1; empty when jobs ran one at a time", (T,)),
    "telemetry_gpus": Column("GPUs traced", "", "how many GPUs the engine's trace read as one (all of a "
                             "tensor-parallel engine's: power, energy and memory summed, activities averaged)", (C,)),
    "wall_s": Column("wall time", "s", "submit of the first request to the last token (runs); a job's whole span "
                     "(timing)", (R, T)),
    "ttft_mean_s": Column("time to first token, mean", "s", "mean over the batch's requests", (R, L, X)),
    "ttft_p99_s": Column("time to first token, p99", "s", "99th percentile over the batch's requests", (R, L)),
    "tpot_mean_s": Column("time per output token", "s", "(last - first token time) / (tokens - 1), mean over "
                          "requests: the decode speed one user sees", (R, X)),
    "itl_p99_s": Column("inter-token latency, p99", "s", "99th percentile of every gap between tokens", (R,)),
    # energy and utilisation
    "j_per_output_token": Column("energy per output token", "J/tok", "GPU energy counter's rise over the window "
                                 "divided by its output tokens", (R, L, X)),
    "j_per_output_token_above_idle": Column("energy per output token above idle", "J/tok", "the window's energy "
                                            "less idle power x its duration, per output token", (R, L)),
    "energy_check_pct": Column("power integral vs counter", "%", "how far the power reading's integral over the "
                               "window strays from the energy counter (flagged beyond 5%)", (R, L)),
    "idle_power_w": Column("idle power", "W", "the GPU's mean power over the idle window before the work (by the "
                           "energy counter); idle_state says which idle", (C,)),
    "energy_counter_period_s": Column("energy counter period", "s", "median time between the counter's updates",
                                      (C,)),
    "power_averaging_s": Column("power reading's averaging", "s", "the trailing-mean window that best reproduces the "
                                "power reading from the counter", (C,)),
    "power_w_mean": Column("power", "W", "mean board power over the window", (R, L)),
    "util_gpu_pct_mean": Column("utilization.gpu", "%", "what nvidia-smi shows: share of time any kernel ran", (R, L)),
    "gpm_sm_active_pct_mean": Column("SM activity (GPM)", "%", "share of SMs busy, mean over the window", (R, L, X)),
    "gpm_tensor_active_pct_mean": Column("tensor-core activity (GPM)", "%", "share of tensor-core cycles busy",
                                         (R, X)),
    "gpm_dram_bw_pct_mean": Column("DRAM bandwidth (GPM)", "%", "share of peak memory bandwidth used", (R, X)),
    "proc_cpu_pct_mean": Column("engine CPU", "%", "CPU of the engine's process tree (100 = one core)", (R, L)),
    "cpu_steal_pct_mean": Column("host CPU steal", "%", "time the hypervisor gave other guests (0 on bare metal)",
                                 (R,)),
    # engines
    "status": Column("status", "", "ok, partial or failed", (C, L, B, T)),
    "root_cause": Column("root cause", "", "vLLM's own error, or how the process died", (C, B)),
    "engine_start_s": Column("engine start", "s", "AsyncLLM.from_engine_args until ready (import excluded)", (C, T)),
    "vllm_import_s": Column("vLLM import", "s", "import of vLLM in the engine (or bench) process", (C, B)),
    "vllm_import_prefetched": Column("import beforehand", "", "True: a standby process imported vLLM while the "
                                     "previous job ran, before it was sent this job", (C, B)),
    "engine_core_start_method": Column("engine core start", "", "how a server's or a vllm bench process's engine "
                                       "core began: fork (no second import of vLLM) or spawn (vLLM's CLI default; "
                                       "empty: that default)", (C, B)),
    "compile_s": Column("torch.compile", "s", "as vLLM logs it", (C, T)),
    "graph_capture_s": Column("CUDA graphs", "s", "capture time as vLLM logs it", (C, T)),
    "compile_cache": Column("compile cache", "", "what the start found: emptied (cold start), empty or warm "
                            "(the folder holds some graph)", (C,)),
    "compile_cache_hit": Column("compiled graph from cache", "", "True: vLLM loaded this engine's compiled graph "
                                "from the cache; False: it compiled it (its log says which)", (C,)),
    "weights_gib": Column("weights", "GiB", "vLLM's weight memory (the parameter tensors' bytes on the CPU engine)",
                          (C, X)),
    "weights_gib_analytic": Column("weights, analytic", "GiB", "from the architecture config and the precision", (C,)),
    "kv_bytes_per_token": Column("KV cache per token", "B", "layers x 2 x KV heads x head size x bytes", (C,)),
    "kv_capacity_tokens": Column("KV capacity", "tokens", "tokens the engine's KV cache holds", (C,)),
    "kv_cache_gib": Column("KV cache", "GiB", "bytes of the KV-cache tensors", (C, X)),
    "peak_device_mem_gib": Column("peak device memory", "GiB", "peak used minus the level before the engine", (C, X)),
    "identity": Column("code", "", "commit (+dirty:<diff digest>) that measured the row", (C, T)),
    # serving
    "mode": Column("load", "", "concurrency (closed loop) or rate (Poisson arrivals)", (L, X)),
    "level": Column("level", "users or req/s", "concurrent users, or requests per second", (L, X)),
    "req_s": Column("requests/s", "req/s", "completed requests over the level's duration (its steady-state window's, "
                    "when it had one)", (L,)),
    "window": Column("window", "", "steady state (only the window's requests count; serving.window) or whole level",
                     (L,)),
    "window_s": Column("window", "s", "the steady-state window's length (the level's duration without one)", (L,)),
    "window_short": Column("window short", "", "True: the level reached steady_state.max_s before its window was "
                           "long and full enough", (L,)),
    "overloaded": Column("overloaded", "", "True: an open-loop level stopped past the server's capacity, more than "
                         "steady_state.overload_s seconds of its arrivals outstanding (serving.window.overloaded); "
                         "empty where not watched", (L,)),
    "sent": Column("sent", "requests", "every request the level sent, warm-up and drain included", (L,)),
    "warmup_excluded": Column("warm-up left out", "requests", "sent before the window began", (L,)),
    "drain_excluded": Column("drain left out", "requests", "ended after the level stopped sending", (L,)),
    "ttft_p90_hi_s": Column("time to first token, p90, upper CI", "s", "95% bootstrap interval of a level percentile "
                            "(requests resampled whole): every <metric>_p<q>_lo_s / _hi_s for ttft, e2e, tpot, itl "
                            "and q 50, 90, 99", (L,)),
    "ttft_p50_s": Column("time to first token, p50", "s", "median over the level's requests", (L, X)),
    "itl_p50_s": Column("inter-token latency, p50", "s", "median of every gap between tokens", (L,)),
    "e2e_mean_s": Column("end-to-end latency, mean", "s", "request sent to last token", (L,)),
    "slo_met_share": Column("within objective", "share", "requests whose first token came within slo_ttft_s", (L,)),
    "goodput_req_s": Column("goodput", "req/s", "requests per second that met the objective", (L,)),
    # the server's own account (vLLM's /metrics), per level
    "client_in_flight_avg": Column("outstanding (client)", "requests", "requests the client had sent and not yet "
                                   "seen end, time average over the level (Little's law)", (L,)),
    "engine_running_avg": Column("running (engine)", "requests", "time requests spent RUNNING in the engine over the "
                                 "level's duration (vllm:request_inference_time_seconds): the mean number running",
                                 (L,)),
    "engine_waiting_avg": Column("waiting (engine)", "requests", "time requests spent WAITING over the level's "
                                 "duration (vllm:request_queue_time_seconds): the mean number queued", (L,)),
    "srv_running_mean": Column("running (server)", "requests", "vllm:num_requests_running, mean of the reads inside "
                               "the level", (L, S)),
    "srv_waiting_mean": Column("waiting (server)", "requests", "vllm:num_requests_waiting, mean of the reads inside "
                               "the level", (L, S)),
    "srv_kv_cache_usage_max": Column("KV cache used, max", "share", "vllm:kv_cache_usage_perc (1 = full), largest "
                                     "read inside the level", (L, S)),
    "srv_preemptions_delta": Column("preemptions", "", "vllm:num_preemptions rise between the level's edges", (L,)),
    "srv_generation_tokens_delta": Column("output tokens (server)", "tokens", "vllm:generation_tokens rise between "
                                          "the level's edges; equals the client's count when both are right", (L,)),
    "srv_requests_finished_delta": Column("finished (server)", "requests", "vllm:request_success rise between the "
                                          "level's edges", (L,)),
    "srv_queue_time_mean_s": Column("queue time (server)", "s", "mean time a request of the level spent WAITING "
                                    "before the scheduler ran it (vllm:request_queue_time_seconds)", (L,)),
    "srv_tokens_per_step": Column("tokens per engine step", "tokens", "vllm:iteration_tokens_total: tokens "
                                  "scheduled per step, mean over the level's steps", (L,)),
    "srv_step_rate_hz": Column("engine steps/s", "1/s", "engine steps of the level over its duration", (L,)),
    "srv_prefix_cache_hit_share": Column("prefix cache hits", "share", "cached tokens / tokens looked up", (L,)),
    "srv_scrape_p50_s": Column("/metrics read time, p50", "s", "how long the server took to answer a read", (L,)),
    "client_cpu_s": Column("client CPU", "s", "CPU seconds the load generator used during the level; in the "
                           "serving cross-check each tool's own (another tool's: its host process and the "
                           "processes it started, its set-up and result writing included)", (L, "serve_crosscheck")),
    # timing
    "job": Column("job", "", "a measurement of the plan, or a notebook", (T,)),
    "kind": Column("kind", "", "engine, bench_latency, serve, hardware, overhead_probe, notebook", (T,)),
    "launch_s": Column("launch", "s", "process start until the worker's first record", (T,)),
    "import_s": Column("import vLLM", "s", "in the engine process, inside this job's time (0 when a standby "
                       "imported it beside the previous job)", (T,)),
    "measure_s": Column("measuring", "s", "warm-ups, measured runs and checks (load levels for a server)", (T,)),
    "shutdown_s": Column("shutdown", "s", "engine shutdown", (T,)),
    "teardown_s": Column("teardown", "s", "after the worker's last record: process exit and device memory back", (T,)),
    "beside_import_s": Column("import beside", "s", "the next job's standby importing vLLM while this job ran "
                              "(inside its engine start: held once this job measured)", (T,)),
    "beside_import_held_s": Column("standby held", "s", "how long that standby was stopped because this job "
                                   "began measuring before its import ended", (T,)),
    # comparison
    "metric": Column("metric", "", "the column compared (comparison, serving cross-check)", (X, A)),
    "a_mean": Column("A", "", "mean of run A", (X,)),
    "a_ci95": Column("A 95% CI", "", "", (X,)),
    "b_mean": Column("B", "", "mean of run B", (X,)),
    "b_ci95": Column("B 95% CI", "", "", (X,)),
    "ratio_b_over_a": Column("B / A", "", "", (X,)),
    "util_gpu_a": Column("GPU busy, A", "%", "mean utilization.gpu of A's runs at the point (differing throughput "
                         "rows)", (X,)),
    "util_gpu_b": Column("GPU busy, B", "%", "the same for B", (X,)),
    "proc_cpu_a": Column("engine CPU, A", "%", "mean CPU of A's engine process at the point", (X,)),
    "proc_cpu_b": Column("engine CPU, B", "%", "the same for B", (X,)),
    "host": Column("host explains", "", "\"B waited on its host\" (or A): the slower side's GPU busy 10+ points less "
                   "of the time while its engine process used 90%+ of the other's CPU", (X,)),
    "predicted_ratio": Column("predicted B / A", "", "the roofline model's ratio from each machine's probe", (X,)),
    "verdict": Column("verdict", "", "comparison: same, faster, slower, higher, lower, not comparable; cross-check: "
                      "agrees, differs, inconclusive; harness: under, over or not settled at the target", (X, A)),
    # analyses
    "n": Column("n", "", "repetitions (or requests) averaged", (A,)),
    "bound_tok_s": Column("hardware bound", "tok/s", "the fastest the measured bandwidth and matmul peak allow", (A,)),
    "achieved_fraction": Column("share of the bound", "", "measured / bound (1 would be a perfect engine)", (A,)),
    "step_bound_ms": Column("step bound", "ms", "lower bound of one decode step", (A,)),
    "decode_bound": Column("decode bound by", "", "memory or compute, whichever bound is larger", (A,)),
    "round": Column("round", "", "cross-check round (fresh processes); all = pooled", (B, A)),
    "slmstudy_median_tok_s": Column("ours, median", "tok/s", "our stream-timed runs of the cross-check point", (A,)),
    "bench_median_tok_s": Column("bench latency, median", "tok/s", "vllm bench latency's iterations", (A,)),
    "median_difference_pct": Column("difference", "%", "(ours - bench) / bench, on medians", (A,)),
    "within_tolerance": Column("within tolerance", "", "the difference is within the cross-check's tolerance", (A,)),
    "difference_ci_lo": Column("difference, CI low", "%", "95% CI of the difference: Student's t over rounds (3 or "
                               "more), else a bootstrap of runs within rounds (ci_method)", (A,)),
    "difference_ci_hi": Column("difference, CI high", "%", "upper end of that interval", (A,)),
    "ci_method": Column("CI from", "", "rounds (t over the rounds' differences) or bootstrap (runs within rounds: "
                        "blind to process-to-process changes)", (A,)),
    "streamed_tok_s": Column("streamed", "tok/s", "runs whose every token is streamed and timed (our harness)", (A,)),
    "final_only_tok_s": Column("final outputs only", "tok/s", "the same batch and prompt lengths, final outputs only "
                               "(as vllm bench latency collects them)", (A,)),
    "slowdown_median_pct": Column("slowdown, median", "%", "median over the pairs", (A,)),
    "pairs": Column("pairs", "", "ABBA pairs measured", (A,)),
    "lag_stream_ms": Column("lag after the core, streamed", "ms", "median over pairs of a streamed run's time from "
                            "the engine core's step that made the last token (its own timestamp) to our harness "
                            "holding every output", (A,)),
    "lag_final_ms": Column("lag after the core, final only", "ms", "the same for final-output-only runs", (A,)),
    "delivery_cost_pct": Column("delivery cost", "%", "(lag streamed - lag final only) / wall time final only, mean "
                                "over pairs: what streaming adds after the core's last step", (A,)),
    "delivery_ci95": Column("delivery cost, 95% CI", "%", "Student's t over the pairs", (A,)),
    "delivery_ci_lo": Column("delivery cost, CI low", "%", "lower end of that interval", (A,)),
    "delivery_ci_hi": Column("delivery cost, CI high", "%", "upper end of that interval", (A,)),
    "delivery_verdict": Column("delivery verdict", "", "under, over or not settled at the harness target", (A,)),
    "core_slowdown_pct": Column("core's own slowdown", "%", "the engine core's part of each run (submit to its last "
                                "token's step), streamed against final only, mean over pairs: carries the "
                                "host's run-to-run spread", (A,)),
    "core_ci95": Column("core's slowdown, 95% CI", "%", "Student's t over the pairs", (A,)),
    "main_busy_stream_pct": Column("main process busy, streamed", "%", "the measuring process's CPU time over the "
                                   "run's wall time, median over pairs (100% = one core: the event loop "
                                   "delivering outputs falls behind near it)", (A,)),
    "main_busy_final_pct": Column("main process busy, final only", "%", "the same for final-output-only runs", (A,)),
    # the front-end A/B (frontend_cost): AsyncLLM against LLM.generate inside one process
    "stream_tok_s": Column("AsyncLLM, streamed", "tok/s", "front-end A/B: our measured path, every token streamed "
                           "and timed, mean over pairs", (A,)),
    "final_tok_s": Column("AsyncLLM, final only", "tok/s", "front-end A/B: AsyncLLM with final outputs only", (A,)),
    "llm_tok_s": Column("LLM.generate", "tok/s", "front-end A/B: one LLM.generate call over the batch, as vllm "
                        "bench latency times it", (A,)),
    "llm_min_tok_s": Column("LLM.generate, slowest run", "tok/s", "front-end A/B: the slowest of LLM.generate's "
                            "runs of this batch in one process (the host's own spread)", (A,)),
    "llm_max_tok_s": Column("LLM.generate, fastest run", "tok/s", "the fastest of those runs", (A,)),
    "stream_vs_llm_pct": Column("streamed vs LLM", "%", "(streamed / LLM.generate - 1) per pair, mean over pairs: "
                                "the cross-check's comparison inside one process", (A,)),
    "stream_vs_llm_ci95": Column("streamed vs LLM, 95% CI", "%", "Student's t over the pairs", (A,)),
    "stream_vs_llm_ci_lo": Column("streamed vs LLM, CI low", "%", "lower end of that interval", (A,)),
    "stream_vs_llm_ci_hi": Column("streamed vs LLM, CI high", "%", "upper end of that interval", (A,)),
    "stream_vs_llm_verdict": Column("streamed vs LLM, verdict", "", "within, slower or faster by more than the "
                                    "target, or not settled by the pairs", (A,)),
    "final_vs_llm_pct": Column("final only vs LLM", "%", "(AsyncLLM final only / LLM.generate - 1) per pair, mean "
                               "over pairs: the front end alone", (A,)),
    "final_vs_llm_ci95": Column("final only vs LLM, 95% CI", "%", "Student's t over the pairs", (A,)),
    "final_vs_llm_ci_lo": Column("final only vs LLM, CI low", "%", "lower end of that interval", (A,)),
    "final_vs_llm_ci_hi": Column("final only vs LLM, CI high", "%", "upper end of that interval", (A,)),
    "final_vs_llm_verdict": Column("final only vs LLM, verdict", "", "as for streamed vs LLM", (A,)),
    "main_busy_llm_pct": Column("main process busy, LLM", "%", "the process's CPU time over the run's wall time "
                                "during LLM.generate, median over pairs", (A,)),
    "tool": Column("tool", "", "serving cross-check: slmstudy (our client), bench_serve (vllm bench serve) or "
                   "guidellm (GuideLLM); in the analysis, the tool ours is compared with", ("serve_crosscheck", A)),
    "requests_in_stats": Column("requests in its statistics", "requests", "GuideLLM: the completed requests "
                                "its statistics cover (those ending inside its measured window; its rates and "
                                "percentiles are over these)", ("serve_crosscheck",)),
    "slmstudy": Column("ours", "", "our client's figure, median over rounds (unit of the figure)", (A,)),
    "other": Column("theirs", "", "the other tool's figure, median over rounds (unit of the figure)", (A,)),
    "rounds": Column("rounds", "", "rounds with both sides measured", (A,)),
    "client_cores": Column("tool's own CPU", "cores", "serving cross-check: a tool's CPU seconds over the time they "
                           "cover (ours: the level's span; another tool's: its run in the host), median over "
                           "rounds", (A,)),
    "seconds_between": Column("seconds apart", "s", "bench latency's end to our first run", (A,)),
    "slowdown_pct": Column("slowdown", "%", "throughput lost with the sampler running (overhead) or by streaming and "
                           "timing every token (harness), mean over pairs", (A,)),
    "ci95": Column("95% CI", "", "", (A,)),
    "max load meeting mean TTFT": Column("max load, mean TTFT within objective", "users or req/s", "", (A,)),
    "max load meeting p90 TTFT": Column("max load, p90 TTFT within objective", "users or req/s", "", (A,)),
    "bound": Column("bound by", "", "what limited a serving level: KV cache, queue, client, arrivals, GPU, host, CPU "
                    "or unclear (the rule is in 04_serving)", (A,)),
    "why": Column("because", "", "the numbers the rule read", (A,)),
    # four-bit weights (02) and the edge engine (06)
    "speed_ratio": Column("speed vs bf16", "x", "output tokens/s of the 4-bit precision over bf16's at the same batch",
                          (A,)),
    "bf16_tok_s": Column("bf16", "tok/s", "bf16's output tokens/s at the same batch (the 4-bit table's reference)",
                         (A,)),
    "weight_bytes_ratio": Column("weight bytes vs bf16", "x", "analytic weight bytes read per step over bf16's", (A,)),
    "file_type": Column("GGUF type", "", "llama.cpp file type (F16, Q8_0, Q4_K_M, ...): per-tensor types as its "
                        "quantizer picks them", (R, C, "gguf_files")),
    "threads": Column("threads", "", "llama.cpp threads for prompt processing and generation", (R, C)),
    "size_gb": Column("file size", "GB", "the GGUF file's size on disk, 1e9 bytes", (A,)),
    "size_gib": Column("file size", "GiB", "the same in 2^30 bytes", (A,)),
    "bits_per_weight": Column("bits per weight", "bit", "file size x 8 over the model's parameters (metadata "
                              "included)", (C, "gguf_files")),
    "bytes_read_per_token": Column("bytes read per token", "B", "weights one decoding step reads: every tensor once, "
                                   "the token embedding one row unless it is also the output matrix",
                                   (C, "gguf_files")),
    "prompt_tok_s": Column("prompt", "tok/s", "llama.cpp's prompt-processing speed (its own timing)", (R,)),
    "gen_tok_s": Column("generation", "tok/s", "llama.cpp's generation speed, first token excluded (its time is "
                        "counted with the prompt)", (R,)),
    "ttft_s": Column("time to first token", "s", "submit to the first streamed token", (R,)),
    "rss_anon_mib": Column("resident, anonymous", "MiB", "the engine's heap after the request: repacked weights, "
                           "KV cache, buffers (the mapped file's pages are rss_file_mib)", (R,)),
    "other_cpu_cores_mean": Column("other CPU", "cores", "cores other processes took during the request (machine "
                                   "CPU less the engine's)", (R,)),
    "needed_gb_s": Column("bandwidth needed", "GB/s", "claimed tokens/s x bytes one token reads", (A,)),
    "published_gb_s": Column("bandwidth published", "GB/s", "the device's peak memory bandwidth (catalog/devices.yaml)",
                             (A,)),
    "needed_pct_of_published": Column("needed / published", "%", "above 100: impossible as claimed", (A,)),
    # step anatomy (03, 02): a profiled window of decode steps
    "window_steps": Column("steps profiled", "", "decode step periods in the window (between its first and last "
                           "step marks)", ("anatomy",)),
    "window_us": Column("window", "us", "the window's wall time on the profiler's clock", ("anatomy",)),
    "skip": Column("steps skipped", "", "decode steps of the whole batch before the window (it sits mid-output)",
                   ("anatomy",)),
    "events": Column("device events", "", "GPU kernels, copies and sets (CPU engine: top-level torch ops) in the "
                     "window", ("anatomy",)),
    "batch_tpot_s": Column("profiled batch's time per token", "s", "time per output token of the profiled batch "
                           "itself (profiler running for part of it)", ("anatomy",)),
    "unprofiled_steps": Column("unprofiled steps timed", "", "periods between consecutive decode steps of the "
                               "batch outside the window (the host's clock, no profiler)", ("anatomy",)),
    "unprofiled_step_us": Column("unprofiled step", "us", "their mean", ("anatomy",)),
    "unprofiled_step_us_median": Column("unprofiled step (median)", "us", "their median", ("anatomy",)),
    "part": Column("part of the step", "", "a kernel class (gemm, attention, elementwise, act_quant, sampling, "
                   "memcpy, other), idle, or a GEMM's layer role (gemm:qkv, ...)", (A,)),
    "ms_per_step": Column("time per step", "ms", "the part's summed durations in the window over its steps", (A,)),
    "share": Column("share of the step", "", "ms per step over the measured (unprofiled) step", (A,)),
    "bound_ms": Column("own bound", "ms", "the part's bytes over the measured bandwidth or FLOPs over the measured "
                       "peak, whichever is longer (anatomy.bounds)", (A,)),
    "above_bound_ms": Column("above its bound", "ms", "ms per step minus the part's own bound", (A,)),
    "measured_step_ms": Column("measured step", "ms", "the sweep's time per output token at this batch (median of "
                               "its runs, no profiler)", (A,)),
    "profiled_step_ms": Column("profiled step", "ms", "the window's wall time over its steps", (A,)),
    "classes_ms": Column("kernels", "ms", "all classes' time per step (kernels or ops)", (A,)),
    "idle_ms": Column("device idle", "ms", "per step, the window's time no device event covers: waiting for the "
                      "host", (A,)),
    "idle_share": Column("profiled idle share", "", "the profiled window's device idle over the measured step (the "
                         "profiler's host work lengthens it)", (A,)),
    "host_ms": Column("host wait", "ms", "device idle in the measured (unprofiled) step: measured step less the "
                      "kernels' time; empty where the kernels exceed it", (A,)),
    "host_share": Column("host wait share", "", "host_ms over the measured step: what the verdict's rule reads",
                         (A,)),
    "unprofiled_step_ms": Column("unprofiled step", "ms", "mean host period of the same batch's decode steps "
                                 "before and after the window, without the profiler (nan for windows recorded "
                                 "before it was timed)", (A,)),
    "window_vs_sweep_pct": Column("anatomy batch vs sweep", "%", "unprofiled step / measured step - 1: how well "
                                  "the profiled batch stands for the sweep's runs", (A,)),
    "profiler_cost_basis": Column("profiler cost against", "", "unprofiled steps (the same batch) or sweep "
                                  "(windows without unprofiled steps)", (A,)),
    "profiler_cost_pct": Column("profiler cost", "%", "profiled step / unprofiled step - 1 (or / measured step "
                                "- 1 where the basis is the sweep)", (A,)),
    "sum_ms": Column("classes + idle", "ms", "what the anatomy accounts for per step", (A,)),
    "sum_diff_pct": Column("sum vs measured", "%", "(classes + idle) / measured step - 1", (A,)),
    "sum_check": Column("sum check", "", "ok within anatomy.sum_tolerance_pct, else off", (A,)),
    "roofline_bound_ms": Column("roofline bound", "ms", "the decode step's lower bound (weights and KV cache read "
                                "once, or the step's FLOPs)", (A,)),
    "class_bounds_ms": Column("kernels' bounds", "ms", "the classes' own bounds added up", (A,)),
    "gap_ms": Column("gap to the bound", "ms", "measured step minus the roofline bound", (A,)),
    "limit": Column("what limits the step", "", "host-bound, kernel-bound or near the hardware bound (rule: "
                    "anatomy_report.limit_of)", (A,)),
    "roles": Column("GEMM roles", "", "assigned, or why the GEMMs' layer roles could not be read from their order",
                    (A,)),
    "calls_per_step": Column("calls per step", "", "the kernel's launches (CPU: op calls) per decode step", (A,)),
}


def header(name: str) -> str:
    """A column's header for a reader: label and unit, or the name itself."""
    col = COLUMNS.get(name)
    return col.header if col else name


def markdown() -> str:
    """docs/columns.md."""
    lines = ["# Columns of the study's tables", "",
             "Generated from `lib/slmstudy/results/columns.py` by `python -m slmstudy docs`; do not edit.", "",
             "| column | label | unit | tables | meaning |", "|---|---|---|---|---|"]
    for name, c in COLUMNS.items():
        lines.append(f"| `{name}` | {c.label} | {c.unit} | {', '.join(c.tables)} | {c.meaning} |")
    return "\n".join(lines) + "\n"
