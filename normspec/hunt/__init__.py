"""`normspec hunt`: long, targeted, persistent campaigns that end in a catalogue of
discrepancies, each with a standalone reproducer.

    command.py      the subcommand: its arguments, the checks before a run, the exit status
    budget.py       the budget ("10m") and how it is shared among the cells
    campaign.py     runs the property suite (isolated, as `check` does) under the budget,
                    in one pytest child per worker; keeps what was found when stopped, and
                    watches for hung cells
    tally.py        what the children journaled, as it arrives: one pool of findings, and
                    what each worker's child is doing now (its running cell, its process)
    plugin.py       the hunt's half inside the pytest child: time slices, every failing
                    example and the backend call that left its bound, throughput
    display.py      the live progress display on a terminal
    signatures.py   the region of parameters a discrepancy lives in, and its signature
    catalogue.py    one entry per signature, merged across campaigns; discrepancies.md/.json
    reproducers/    the generator of standalone reproducers, one template per framework family

The runner layer: it selects, runs and records. The reproducers are the exception that proves
the rule: they write normalization math as code, for a reader who has only NumPy.
"""
