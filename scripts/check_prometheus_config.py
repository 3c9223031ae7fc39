#!/usr/bin/env python3
"""Runs `promtool check config` on a Prometheus config, tolerating a promtool
older than the Prometheus that will load it.

    python3 scripts/check_prometheus_config.py instrumentation/prometheus/prometheus.yaml

The stack runs Prometheus 3, while CI gets promtool from the distribution's
`prometheus` package (2.42 on Debian 12, 2.45 on Ubuntu 24.04). An older
promtool refuses top-level sections it does not know yet ("field otlp not
found in type config.plain"). Each such section is taken out of a copy and
the copy checked again, so everything the installed promtool knows (global
settings, storage, every scrape job) is still checked, and the sections it
could not check are named in the output. Anything else promtool reports
fails the check. The `otlp` section, when left out, is still checked for its
shape: promote_resource_attributes must be a list of attribute names.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml  # PyYAML, installed alongside yamllint

_UNKNOWN = re.compile(r"field (\w+) not found in type config\.plain")


def promtool(config: dict) -> subprocess.CompletedProcess:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as copy:
        yaml.safe_dump(config, copy)
        copy.flush()
        return subprocess.run(
            ["promtool", "check", "config", copy.name],
            capture_output=True,
            text=True,
        )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    config = yaml.safe_load(Path(argv[0]).read_text())
    version = subprocess.run(["promtool", "--version"], capture_output=True, text=True)
    print(version.stdout.splitlines()[0] if version.stdout else "promtool (version unknown)")
    skipped = []
    while True:
        result = promtool(config)
        unknown = set(_UNKNOWN.findall(result.stdout + result.stderr)) & set(config)
        if result.returncode == 0 or not unknown:
            break
        for key in sorted(unknown):
            skipped.append(key)
            del config[key]
    print(result.stdout + result.stderr, end="")
    if skipped:
        print(f"not checked by this promtool (newer than it): {', '.join(skipped)}")
    problems = []
    if "otlp" in skipped:
        otlp = yaml.safe_load(Path(argv[0]).read_text())["otlp"] or {}
        attributes = otlp.get("promote_resource_attributes", [])
        if not (isinstance(attributes, list) and all(isinstance(a, str) for a in attributes)):
            problems.append("otlp.promote_resource_attributes must be a list of strings")
    for problem in problems:
        print(problem)
    return 1 if result.returncode or problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
