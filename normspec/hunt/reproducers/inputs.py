"""How a reproducer rebuilds its input: from the case's seeds where that gives the very same
values, from a small .npz beside the script where it does not.

A generated case holds recipes (properties/strategies.py: `ArrayRecipe`: shape, kind, seed,
offset, scale, built with np.random.default_rng(seed)), so most inputs are a line each. A
property may change its input before the call (affine recovery sets the weight to the
standard deviation, an invariance scales x), and a recipe may be of a kind this template does
not know: every inline line is therefore run here, through the family's dtype conversion,
and kept only if it gives the culprit's arrays bit for bit; the others are saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from normspec.hunt.reproducers.calls import Family

#: normspec's ArrayRecipe.build, written out: the reproducer's only way to make data.
RECIPE_SOURCE = '''def recipe(shape, kind="normal", seed=0, offset=0.0, scale=1.0):
    """float64 values from a seeded generator (normspec's ArrayRecipe)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape)
    if kind == "constant":
        return np.full(shape, offset)
    if kind == "mixed":
        z = z * 10.0 ** rng.uniform(-3, 2, shape)
    x = offset + scale * z
    if kind == "constant_samples" and shape:
        constant = rng.random(shape[0]) < 0.5
        x[constant] = offset
    return x'''


def _recipe_function():
    namespace: dict = {"np": np}
    exec(RECIPE_SOURCE, namespace)  # the very text the scripts carry
    return namespace["recipe"]


RECIPE = _recipe_function()


@dataclass
class Inputs:
    """The input lines of a script, and the arrays that go to its .npz."""

    lines: list[str] = field(default_factory=list)
    saved: dict[str, np.ndarray] = field(default_factory=dict)
    uses_recipe: bool = False


def _recipe_parts(recipe: object) -> tuple | None:
    """(shape, kind, seed, offset, scale) of an ArrayRecipe-like object, or None."""
    try:
        return (
            tuple(recipe.shape),
            str(recipe.kind),
            int(recipe.seed),
            float(recipe.offset),
            float(recipe.scale),
        )
    except (AttributeError, TypeError, ValueError):
        return None


def recipes_for(case: object, draws: list, method: str) -> dict[str, tuple[object, bool]]:
    """{array name: (recipe, positive)} as the case builds the call's arrays (`positive`:
    made positive as running variances are, |x| + 0.5)."""
    from normspec.hunt.catalogue import parse_case
    from properties import strategies

    found: dict[str, tuple[object, bool]] = {}
    if case is None:
        return found
    if hasattr(case, "batches"):  # a TrainingCase
        for k, batch in enumerate(case.batches):
            found[f"batch_{k}"] = (batch, False)
        found["initial_mean"] = (case.initial_mean, False)
        found["initial_var"] = (case.initial_var, True)
        if getattr(case, "affine", False):
            channels = (case.batches[0].shape[1],)
            found["weight"] = (strategies.ArrayRecipe(channels, seed=1), False)
            found["bias"] = (strategies.ArrayRecipe(channels, seed=2), False)
        return found
    for name in ("x", "weight", "bias", "running_mean", "running_var"):
        recipe = getattr(case, name, None)
        if recipe is not None:
            found[name] = (recipe, name == "running_var")
    if method == "vjp":
        for label, text in draws:
            if label == "grad_y":
                recipe = parse_case(text)
                if recipe is not None:
                    found["grad_y"] = (recipe, False)
    return found


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a64.shape != b64.shape:
        return False
    return bool(
        np.array_equal(a64, b64, equal_nan=True)
        and np.array_equal(np.signbit(a64), np.signbit(b64))
    )


def build_inputs(
    arrays: dict[str, np.ndarray], dtype: str, family: Family, recipes: dict
) -> Inputs:
    """The lines that make each of the call's `arrays` (bfloat16 held as float32) in the
    family's host dtype: from its recipe where that reproduces it exactly, else from the
    .npz (`saved`)."""
    host = family.host_dtype(dtype)
    inputs = Inputs()
    for name, array in arrays.items():
        found = recipes.get(name)
        parts = None if found is None else _recipe_parts(found[0])
        if parts is not None:
            shape, kind, seed, offset, scale = parts
            positive = found[1]
            values = RECIPE(shape, kind, seed, offset, scale)
            if positive:
                values = np.abs(values) + 0.5
            if _same(family.held(values, dtype), array):
                expression = f"recipe({shape}, {kind!r}, {seed}, {offset!r}, {scale!r})"
                if positive:
                    expression = f"(np.abs({expression}) + 0.5)"
                inputs.lines.append(f"{name} = {expression}.astype({host})")
                inputs.uses_recipe = True
                continue
        inputs.saved[name] = array
        cast = "" if host in ("np.float32", "np.float16", "np.float64") else f".astype({host})"
        inputs.lines.append(f"{name} = saved[{name!r}]{cast}")
    return inputs
