"""`normspec envelope`: the accuracy envelope of each backend x norm x dtype.

Where a backend keeps to its error bound, and where it stops: the worst error / bound over a
grid of magnitude x conditioning x reduction size (`grid`), measured against the spec and
against the best peer on the same inputs (`measure`), classified as one record per cell
(`records`, `summary`), written as JSON (`output`) and drawn as heatmaps (`heatmap`).
`command` is the subcommand of `normspec`.
"""
