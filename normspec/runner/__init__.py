"""The runner: it selects what to run, runs the property suite and records the results.

It holds no normalization knowledge: `engine` runs pytest on `properties/`, `report` turns the
suite's record into the reports, `cli` is the `normspec` command. Nothing below the runner
(the spec, the tolerance model, the backends, the properties) imports it.
"""
