"""The JUnit XML reporter: one test case per target and budget, for CI test-report views.

Mapping: PASS passes; FAIL is a ``<failure>``; INCONCLUSIVE is ``<skipped>`` with its reason;
a check that could not be evaluated (ERROR) and a model that could not be loaded or measured
(``RunResult.error``) are ``<error>``. A regression compare adds one suite per model with a
test case per metric: a regression is a failure, an inconclusive or untested change is skipped.

The shape follows the Ant/Jenkins JUnit schema that GitHub, GitLab, Jenkins and junitparser read:
``testsuites > testsuite(name, tests, failures, errors, skipped, time, timestamp, hostname) >
properties, testcase(classname, name, time) > failure|error|skipped, system-out``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime

from mlfit.report.common import (
    PROVENANCE_LABEL,
    budget_text,
    change_text,
    error_text,
    format_value,
    interval_text,
    model_name,
    value_text,
)
from mlfit.result import ChangeStatus, Check, Comparison, Report, RunResult, TargetReport, Verdict

# XML 1.0 forbids most control characters even when escaped: drop them from any text.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: object) -> str:
    return _INVALID_XML.sub("", str(text))


def _timestamp(created: str) -> str:
    """ISO 8601 without a zone, as the Ant schema's xs:dateTime pattern wants."""
    try:
        return datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z").strftime("%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return _clean(created[:19])


def _classname(result: RunResult, suffix: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", model_name(result))
    return f"mlfit.{stem}.{re.sub(r'[^A-Za-z0-9_-]+', '_', suffix)}"


class _Suite:
    """Builds one ``<testsuite>`` and keeps its counts."""

    def __init__(self, parent: ET.Element, name: str, timestamp: str, hostname: str) -> None:
        self.element = ET.SubElement(
            parent,
            "testsuite",
            name=_clean(name),
            timestamp=timestamp,
            hostname=_clean(hostname or "localhost"),
        )
        self.properties = ET.SubElement(self.element, "properties")
        self.counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def prop(self, name: str, value: object) -> None:
        ET.SubElement(self.properties, "property", name=name, value=_clean(value))

    def case(
        self, classname: str, name: str, outcome: str | None = None, message: str = "", detail: str = ""
    ) -> ET.Element:
        """``outcome``: None (pass), "failure", "error" or "skipped"."""
        case = ET.SubElement(
            self.element, "testcase", classname=_clean(classname), name=_clean(name), time="0"
        )
        self.counts["tests"] += 1
        if outcome is not None:
            node = ET.SubElement(case, outcome, message=_clean(message))
            if outcome != "skipped":
                node.set("type", outcome.upper() if outcome == "failure" else "ERROR")
                node.text = _clean(detail or message)
            self.counts["skipped" if outcome == "skipped" else outcome + "s"] += 1
        if detail:
            ET.SubElement(case, "system-out").text = _clean(detail)
        return case

    def close(self) -> None:
        if not len(self.properties):
            self.element.remove(self.properties)
        for key, value in self.counts.items():
            self.element.set(key, str(value))
        self.element.set("time", "0")


_OUTCOME = {
    Verdict.PASS: None,
    Verdict.FAIL: "failure",
    Verdict.INCONCLUSIVE: "skipped",
    Verdict.ERROR: "error",
}


def _check_case(suite: _Suite, result: RunResult, target: TargetReport, check: Check) -> None:
    value = value_text(check)
    shown = f" {value}" if check.value is not None else ""
    detail = (
        f"{check.metric}:{shown} against budget {check.budget} ({PROVENANCE_LABEL[check.provenance]}"
        + (f"; {check.method}" if check.method else "")
        + ")"
        + (f"; margin {check.margin:+.0%}" if check.margin is not None else "")
        + (f"; {check.reason}" if check.reason else "")
    )
    outcome = _OUTCOME[check.verdict]
    if check.verdict is Verdict.FAIL:
        message = check.reason or f"{check.metric} is {value}, budget {check.budget}"
    elif check.verdict is Verdict.INCONCLUSIVE:
        message = check.reason or "inconclusive"
    else:
        message = check.reason
    suite.case(
        _classname(result, target.target), f"{check.metric} {budget_text(check)}", outcome, message, detail
    )


def _result_suites(root: ET.Element, result: RunResult, timestamp: str) -> list[_Suite]:
    hostname = result.host.hostname if result.host else ""
    suites: list[_Suite] = []
    if result.error is not None:
        suite = _Suite(root, f"mlfit {model_name(result)}", timestamp, hostname)
        suite.prop("model", result.model.path)
        suite.case(
            _classname(result, "measure"),
            f"load and measure {model_name(result)}",
            "error",
            result.error.message,
            error_text(result),
        )
        return [suite]
    if not result.targets:  # `mlfit profile`: measured, nothing to check; still one case for the CI view
        suite = _Suite(root, f"mlfit {model_name(result)}", timestamp, hostname)
        suite.prop("model", result.model.path)
        suite.case(_classname(result, "measure"), f"load and measure {model_name(result)}")
        return [suite]
    for target in result.targets:
        suite = _Suite(root, f"mlfit {model_name(result)} on {target.target}", timestamp, hostname)
        for key, value in (
            ("model", result.model.path),
            ("sha256", result.model.sha256),
            ("target", target.target),
            ("hardware", target.hardware_name),
            ("verdict", target.verdict.value),
        ):
            suite.prop(key, value)
        for check in target.checks:
            _check_case(suite, result, target, check)
        suites.append(suite)
    return suites


def _comparison_suites(root: ET.Element, comparison: Comparison, timestamp: str) -> list[_Suite]:
    suites = []
    for model in comparison.models:
        name = model.model.rsplit("/", 1)[-1]
        suite = _Suite(root, f"mlfit compare {name}", timestamp, "")
        suite.prop("baseline", comparison.base_path)
        suite.prop("method", comparison.method)
        for warning in comparison.warnings:
            suite.prop("warning", warning)
        classname = "mlfit.compare." + re.sub(r"[^A-Za-z0-9_-]+", "_", name)
        for change in model.changes:
            detail = (
                f"{change.metric}: {format_value(change.base, change.unit)} -> "
                f"{format_value(change.new, change.unit)} ({change_text(change)}, interval "
                f"{interval_text(change)}; {change.method}); {change.status.value}: {change.reason}"
            )
            outcome = {
                ChangeStatus.REGRESSION: "failure",
                ChangeStatus.INCONCLUSIVE: "skipped",
                ChangeStatus.NOT_TESTED: "skipped",
            }.get(change.status)
            suite.case(classname, f"no regression in {change.metric}", outcome, change.reason, detail)
        suites.append(suite)
    return suites


def render_junit(report: Report) -> str:
    """The report as JUnit XML (UTF-8, with declaration)."""
    root = ET.Element("testsuites", name="mlfit")
    timestamp = _timestamp(report.created)
    suites: list[_Suite] = []
    for result in report.results:
        suites.extend(_result_suites(root, result, timestamp))
    if report.comparison is not None:
        suites.extend(_comparison_suites(root, report.comparison, timestamp))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        suite.close()
        for key in totals:
            totals[key] += suite.counts[key]
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
