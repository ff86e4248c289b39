"""The kernels' GPU checks as one result record: the parity suite's outcome per test (from
pytest's JUnit XML) and each compute-sanitizer tool's exit status and summary line (from the log
benchmarks/gpu_session.sh writes). Run by that script on the GPU machine:

``python -m benchmarks.kernel_checks --junit parity.xml --sanitizer-log sanitizer.log --output R.json``
"""
from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from wsol_edge.argtypes import output_file


def parity_from_junit(path: str) -> dict:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path} is not pytest's JUnit XML ({exc})") from None
    tests = []
    for case in root.iter("testcase"):
        outcome, message = "passed", None
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome, message = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag], node.get("message")
                break
        tests.append({"id": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "seconds": float(case.get("time", 0)), **({"message": message[:500]} if message else {})})
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "error", "skipped")}
    return {**counts, "tests": tests}


def sanitizer_from_log(text: str) -> dict:
    """{tool: {"exit": N, "summary": [...]}} from '=== compute-sanitizer --tool X' sections."""
    tools = {}
    for section in re.split(r"^=== compute-sanitizer --tool ", text, flags=re.M)[1:]:
        tool = section.split()[0]
        exit_match = re.search(rf"compute-sanitizer {tool} exit (\d+)", section)
        tools[tool] = {"exit": int(exit_match.group(1)) if exit_match else None,
                       "summary": re.findall(r"^========= ((?:LEAK|ERROR|RACECHECK) SUMMARY: .*)$", section, flags=re.M),
                       "passed_line": next(iter(re.findall(r"^\d+ passed.*$", section, flags=re.M)), None)}
    return tools


def main(argv: list[str] | None = None) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.kernel_checks", description=__doc__.split("\n\n")[0])
    p.add_argument("--junit", required=True, help="pytest --junitxml file of tests/test_kernels.py")
    p.add_argument("--sanitizer-log", help="the log of gpu_session.sh's sanitizer stage")
    p.add_argument("--output", type=output_file, required=True)
    args = p.parse_args(argv)
    machine = machine_info()  # names the GPU (nvidia-smi)
    record = {"kind": "kernel_checks", "device": machine["gpu"], "parity": parity_from_junit(args.junit),
              "sanitizer": sanitizer_from_log(Path(args.sanitizer_log).read_text()) if args.sanitizer_log else None,
              "command": command_line("benchmarks.kernel_checks", argv), "commit": git_commit(), "machine": machine}
    atomic_write_json(args.output, {"records": [record]})
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
