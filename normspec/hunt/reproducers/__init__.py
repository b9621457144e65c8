"""The generator of standalone reproducers: one script per catalogue entry, under
DIR/hunt/repro/, that someone can paste into an upstream report as it is.

A script replays the culprit call of the entry's smallest failing example (the backend call
whose output left its bound, normspec/hunt/judge.py): it rebuilds the exact input (seeded
NumPy, or a small .npz beside it: inputs.py), makes the call as normspec's adapter makes it
(one template per framework family: torch_family.py, tensorflow_family.py, adapter_family.py),
computes the exact value with the norm's formula in float64 NumPy written out (exact.py),
prints both at the worst element with normspec's bound there, and exits 1 while the error
exceeds that bound (or the call returns NaN or inf where the exact value is a number), 0 once
it is fixed. It imports NumPy and the framework, never normspec; an adapter that is its own
framework (the NumPy backend, the controls, tests/mutants) is imported as the framework.

Before a script is written its exact-value code runs here on the culprit's own arrays and must
agree with the spec's value, and each inline input must rebuild the culprit's array bit for
bit: a script that would not reproduce the finding is not written.
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from normspec.hunt.reproducers.adapter_family import AdapterFamily
from normspec.hunt.reproducers.calls import CallSpec, Code, Family
from normspec.hunt.reproducers.exact import constants, exact_lines, sets_of
from normspec.hunt.reproducers.inputs import RECIPE_SOURCE, build_inputs, recipes_for
from normspec.hunt.reproducers.tensorflow_family import TensorFlowFamily
from normspec.hunt.reproducers.torch_family import TorchFamily
from normspec.tolerance import LARGEST_FINITE

#: Where the reproducers go, inside the catalogue's directory.
REPRO = "repro"
#: The width of a reproducer's docstring.
WIDTH = 92


class GeneratorError(Exception):
    """A reproducer that cannot be written faithfully; the message says why."""


@dataclass
class Script:
    """A reproducer: its file name, its text, and the arrays of its .npz (if any)."""

    name: str
    text: str
    saved: dict[str, np.ndarray]


def family_for(backend: str) -> Family:
    """The template family of a backend name."""
    if backend.startswith("torch"):
        return TorchFamily(backend)
    if backend.startswith("tensorflow"):
        return TensorFlowFamily(backend)
    return AdapterFamily(backend)


def _number(value: float | str) -> float:
    return float(value) if not isinstance(value, str) else float(value.replace("'", ""))


def _slug(backend: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", backend.rpartition(":")[2] or backend)


def spec_of(culprit: dict, arrays: dict[str, np.ndarray]) -> CallSpec:
    """The culprit's call, as the templates read it."""
    return CallSpec(
        backend=culprit["backend"],
        method=culprit["method"],
        norm=culprit["norm"],
        dtype=culprit["scalars"]["dtype"],
        shapes={name: tuple(a.shape) for name, a in arrays.items()},
        scalars=culprit["scalars"],
        quantity=culprit.get("quantity", "y"),
    )


def _received(arrays: dict[str, np.ndarray]) -> dict:
    """What a script's `received` holds, from the culprit's arrays."""
    received = {n: np.asarray(a, dtype=np.float64) for n, a in arrays.items()}
    batches = sorted((n for n in received if n.startswith("batch_")), key=lambda n: int(n[6:]))
    if batches:
        received["batches"] = [received.pop(n) for n in batches]
    return received


def _scalar_lines(spec: CallSpec) -> list[str]:
    s = spec.scalars
    lines = [f"eps = {spec.eps!r}"]
    if spec.method == "train":
        lines += [
            f"momentum = {s['momentum']!r}  # normspec's meaning: the weight of the "
            f"{s['momentum_weighs']} value (None: the cumulative average)",
            f"momentum_weighs = {s['momentum_weighs']!r}",
            f"estimator = {s['running_var_estimator']!r}  # the batch variance the running "
            "variance takes",
        ]
    return lines


def check_exact(lines: list[str], spec: CallSpec, arrays: dict, culprit: dict) -> None:
    """Run the exact-value lines on the culprit's arrays; they must give the spec's value."""
    s = spec.scalars
    namespace = {
        "np": np,
        "received": _received(arrays),
        "eps": spec.eps,
        "momentum": s.get("momentum"),
        "momentum_weighs": s.get("momentum_weighs"),
        "estimator": s.get("running_var_estimator"),
    }
    with np.errstate(all="ignore"):
        exec("\n".join(lines), namespace)  # the code the script will carry
    value = float(np.asarray(namespace["exact"])[tuple(culprit["index"])])
    want = _number(culprit["exact"])
    agree = (math.isnan(value) and math.isnan(want)) or math.isclose(
        value, want, rel_tol=1e-6, abs_tol=1e-300
    )
    if not agree:
        raise GeneratorError(
            f"the written-out exact value {value!r} disagrees with the spec's {want!r} at "
            f"{tuple(culprit['index'])}: a bug of normspec's reproducer templates"
        )


def generate(finding: dict, versions: dict[str, str]) -> Script:
    """The reproducer of a catalogue finding (raises GeneratorError if none can be written)."""
    from normspec.hunt.catalogue import parse_case

    culprit = finding.get("culprit")
    if not culprit:
        raise GeneratorError(
            "no single backend call of the failing example leaves its own bound (or the "
            "process died): rerun it in the suite"
        )
    path = Path(culprit["arrays"])
    if not path.exists():
        raise GeneratorError(f"the culprit's arrays are gone ({path})")
    with np.load(path) as saved:
        arrays = dict(saved)
    spec = spec_of(culprit, arrays)
    family = family_for(spec.backend)
    code = family.code(spec)
    case = parse_case(finding.get("minimal_case"))
    inputs = build_inputs(
        arrays, spec.dtype, family, recipes_for(case, finding.get("minimal_draws", []), spec.method)
    )
    raises = culprit.get("raises")
    exact: list[str] = []
    if not raises:
        x_shape = spec.shapes.get("x") or spec.shapes["batch_0"]
        sets = sets_of(spec.norm, x_shape, spec.scalars)
        exact = constants(sets) + exact_lines(
            spec.norm, spec.method, spec.evaluation, spec.present, spec.quantity, sets
        )
        check_exact(exact, spec, arrays, culprit)
    name = f"{finding['id']}-{spec.norm}-{_slug(spec.backend)}"
    text = _script(finding, culprit, spec, code, inputs, exact, versions, name)
    return Script(name, text, inputs.saved)


def _docstring(
    finding: dict, culprit: dict, spec: CallSpec, code: Code, versions: dict, name: str, saved: bool
) -> list[str]:
    s = finding["signature"]
    version = versions.get(spec.backend) or spec.backend
    shape = spec.shapes.get("x") or spec.shapes.get("batch_0")
    head = f"{version}: {code.what} ({spec.norm} {spec.method}) in {spec.dtype}"
    if culprit.get("raises"):
        summary = [f"{head} raises on an input on which the spec has a value.", culprit["raises"]]
    else:
        ratio = _number(culprit["ratio"])
        summary = [
            f"{head} leaves normspec's error bound.",
            f"Input: {shape} in {spec.dtype}, {finding['region']}.",
            f"{spec.quantity} at element {tuple(culprit['index'])}: observed "
            f"{_number(culprit['observed'])!r}, exact {_number(culprit['exact'])!r} (float64, "
            f"from the same {spec.dtype} inputs); the error is "
            + ("infinite" if math.isinf(ratio) else f"{ratio:.3g} times")
            + f" the bound {culprit['bound']:.3e} that a correct kernel (storing {spec.dtype}, "
            f"accumulating in {culprit.get('accumulation', '?')}) can reach by rounding; "
            f"{culprit.get('outside', '?')} of {culprit.get('size', '?')} elements are outside "
            "their bound.",
        ]
    pair = (
        f" of the pair {s['backend']} (this member leaves its own bound the most)"
        if " vs " in s["backend"]
        else ""
    )
    found_by = [
        f"Found by normspec hunt ({finding.get('last_seen') or 'this campaign'}): the property "
        f"{s['property']} on {s['norm']}{pair}, catalogue entry {finding['id']}.",
        "The input is rebuilt exactly: "
        + ("seeded NumPy" if not saved else f"seeded NumPy and {name}.npz beside this file")
        + "; the exact value is the norm's formula in float64 from the values the layer received.",
        "Prints both, and exits 1 (DEVIATES) while the discrepancy stands, 0 once it is fixed.",
        f"Needs: numpy, {', '.join(code.needs)}.",
    ]
    paragraphs = [summary[0], "", " ".join(summary[1:]), "", " ".join(found_by)]
    lines = []
    for paragraph in paragraphs:
        lines += textwrap.wrap(paragraph, WIDTH) or [""]
    return ['"""' + lines[0], *lines[1:], '"""']


def _script(
    finding: dict,
    culprit: dict,
    spec: CallSpec,
    code: Code,
    inputs,
    exact: list[str],
    versions: dict,
    name: str,
) -> str:
    lines = _docstring(finding, culprit, spec, code, versions, name, bool(inputs.saved))
    lines += ["", "import sys"]
    if inputs.saved:
        lines.append("from pathlib import Path")
    lines += ["", "import numpy as np", *code.imports, "", *code.prelude, "", ""]
    lines.append("# --- the input, as the layer receives it ---")
    if inputs.uses_recipe:
        lines += ["", RECIPE_SOURCE, "", ""]
    if inputs.saved:
        lines.append("saved = np.load(Path(__file__).with_suffix('.npz'))")
    lines += inputs.lines + _scalar_lines(spec)
    lines += ["", f"# --- the call, as normspec's {spec.backend!r} adapter makes it ---"]
    if culprit.get("raises"):
        lines += ["try:", *[f"    {line}" for line in code.call]]
        lines += [
            "except Exception as error:  # the finding: the call raises",
            f"    print(f'{spec.backend} raises {{type(error).__name__}}: {{error}}')",
            "    print('DEVIATES')",
            "    sys.exit(1)",
            "print('fixed: the call returns')",
        ]
        return "\n".join(lines) + "\n"
    lines += code.call
    lines += ["", "# --- the exact value: the formula in float64, from what the layer received ---"]
    lines += exact
    index = tuple(culprit["index"])
    lines += [
        "",
        "# --- the verdict at the worst element, against normspec's bound there ---",
        f"INDEX = {index}",
        f"BOUND = {culprit['bound']!r}  # the most a correct {spec.dtype} kernel errs here",
        f"LARGEST = {LARGEST_FINITE[spec.dtype]!r}  # the largest finite {spec.dtype}",
        "with np.errstate(invalid='ignore'):",
        "    error = np.abs(observed - exact)",
        "    wrong = np.count_nonzero(",
        "        ~np.isfinite(observed) & np.isfinite(exact) & (np.abs(exact) < LARGEST)",
        "    )",
        f"print(f'{spec.quantity} at {{INDEX}}: {spec.backend} {{float(observed[INDEX])!r}}, "
        "exact {float(exact[INDEX])!r}')",
        "print(f'error {error[INDEX]:.3e} = {error[INDEX] / BOUND:.3g} x the bound {BOUND:.3e}')",
        "print(f'{wrong} of {error.size} elements are NaN or inf where the exact value is a "
        "number; the largest finite error is {np.nanmax(np.where(np.isfinite(error), error, "
        "np.nan), initial=0.0):.3e}')",
        "if wrong or not error[INDEX] <= BOUND:",
        "    print('DEVIATES')",
        "    sys.exit(1)",
        "print('fixed: within the bound')",
    ]
    return "\n".join(lines) + "\n"


def write_reproducers(
    found: list[dict], directory: Path, versions: dict[str, str] | None = None
) -> dict[str, tuple[str | None, str]]:
    """Write a reproducer for each finding that has a culprit call; return, per entry id,
    (the script's path, "") or (None, why there is none)."""
    notes: dict[str, tuple[str | None, str]] = {}
    target = directory / REPRO
    for finding in found:
        try:
            script = generate(finding, versions or {})
        except GeneratorError as error:
            notes[finding["id"]] = (None, str(error))
            continue
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{script.name}.py"
        path.write_text(script.text)
        if script.saved:
            np.savez(target / f"{script.name}.npz", **script.saved)
        notes[finding["id"]] = (str(path), "")
    return notes
