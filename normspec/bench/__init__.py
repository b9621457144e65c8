"""`normspec bench`: how fast each backend's norms are, how far from the machine's limit,
and whether that changed.

Part of the runner layer: it selects workloads, times them and records, and holds no
normalization math. Read from the ground up:

    workloads   the fixed grid of shapes (CNN, transformer, conv weight, a small row), the
                inputs of each, and the bytes each must minimally read and write
    calls       "prepare once, call many": a workload bound to a backend, as a call with no
                conversion in it (framework tensors made once, a TF graph traced once)
    threads     the frameworks' thread counts, set explicitly and recorded
    bandwidth   the memory bandwidth probe (a large multi-threaded copy)
    stats       medians, spreads and distribution-free confidence intervals of ratios
    progress    workload i of n, the current one, the time left
    suite, plugin   the pytest-benchmark run of the grid (a child process per pass)
    results     the run's record: pytest-benchmark's JSON and normspec's superset
    compare     a run against a saved one (`--compare FILE --fail-over 10%`)
    ab, worker  two interpreters side by side, alternately (`--ab PYTHON_A PYTHON_B`)
    report      the Markdown tables and the PNG plots
    cli         the `bench` subcommand
"""
