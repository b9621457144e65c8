"""The benchmark itself: one pytest-benchmark test per case and pass (see plugin.py).

Each pass of a case is a fresh preparation and `benchmark.pedantic`: one warm-up round, then
`rounds` rounds of the calibrated number of back-to-back calls; pytest-benchmark's JSON
holds each round's time per call, and the pass it belongs to (extra_info.pass_index).
"""

from __future__ import annotations


def test_workload(benchmark, case_pass, bench_state):
    case, pass_index = case_pass
    settings = bench_state.settings
    passes = settings["passes"]
    detail = f" (pass {pass_index}/{passes})" if passes > 1 else ""
    bench_state.progress.step(case.key, detail)
    prepared, iterations = bench_state.prepare(case)
    try:
        benchmark.group = case.key
        benchmark.extra_info.update(
            case.as_dict(), pass_index=pass_index, iterations=iterations, path=prepared.path
        )
        benchmark.pedantic(
            prepared.call, rounds=settings["rounds"], iterations=iterations, warmup_rounds=1
        )
        prepared.check_not_retraced()
    finally:
        bench_state.release(case)
