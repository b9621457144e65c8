"""JUnit XML for CI systems: pytest's own writer, one test case per norm x property x backend
(pytest's parametrized ids, e.g. `test_vjp_agrees_with_the_spec[torch-layer_norm]`).

Each pytest process of a run writes its file into the run's temporary directory, and
`normspec check` puts the merged file in place with the reports, so an interrupted run leaves
the previous file as it was. A process that crashes writes none: the cells it finished, and
the one that crashed it, are added from the run's record, named as pytest names them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

#: The name of the test suite in the XML.
SUITE = "normspec"
#: The pytest options that shape the XML (each process adds its own `--junit-xml=FILE`).
PYTEST_OPTIONS = ("-o", f"junit_suite_name={SUITE}", "-o", "junit_family=xunit2")
_COUNTED = {"failures": "failure", "errors": "error", "skipped": "skipped"}


def merged_junit(parts: list[Path], results: list[dict] = ()) -> str:
    """The test cases of every part in one `<testsuite>`, with the cells of `results` (the
    run's record) that no part has, and the suite's counts."""
    trees = [ET.parse(p) for p in parts if p.exists()]
    root = trees[0].getroot() if trees else ET.Element("testsuites")
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        suite = ET.SubElement(root, "testsuite", name=SUITE)
    for tree in trees[1:]:
        for case in tree.getroot().iter("testcase"):
            suite.append(case)
    present = {(c.get("classname"), c.get("name")) for c in suite.iter("testcase")}
    for result in results:
        case = _testcase(result)
        if case is not None and (case.get("classname"), case.get("name")) not in present:
            suite.append(case)
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for attribute, tag in _COUNTED.items():
        suite.set(attribute, str(sum(case.find(tag) is not None for case in cases)))
    suite.set("time", f"{sum(float(c.get('time', 0)) for c in cases):.3f}")
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _testcase(result: dict) -> ET.Element | None:
    """A result of the record as a test case, named and marked as pytest's writer does."""
    if "nodeid" not in result:
        return None
    path, *names = result["nodeid"].split("::")
    classname = ".".join([path.removesuffix(".py").replace("/", "."), *names[:-1]])
    case = ET.Element(
        "testcase",
        classname=classname,
        name=names[-1] if names else path,
        time=f"{result.get('duration_s', 0):.3f}",
    )
    message = result.get("message") or result.get("reason") or ""
    if result["status"] == "failed":
        failure = ET.SubElement(case, "failure", message=message.split("\n", 1)[0])
        failure.text = message
    elif result["status"] in ("skipped", "not provided"):
        ET.SubElement(case, "skipped", type="pytest.skip", message=message)
    elif result["status"] == "xfailed":
        ET.SubElement(case, "skipped", type="pytest.xfail", message=message)
    return case
