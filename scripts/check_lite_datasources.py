#!/usr/bin/env python3
"""Checks that the dashboards work in the lite stack's Grafana too.

    python3 scripts/check_lite_datasources.py instrumentation/grafana/dashboards

The lite stack (instrumentation/docker-compose.lite.yaml) runs grafana/otel-lgtm, whose Grafana
keeps the data sources that image provisions, not the full stack's. The
dashboards are mounted unchanged, so every data source uid they name must be
one of otel-lgtm's. Prints each dashboard's uids; exits 1 if one is missing.
"""

import json
import sys
from pathlib import Path

# grafana/otel-lgtm 0.31.0, docker/grafana-datasources.yaml.
OTEL_LGTM_UIDS = {"prometheus", "tempo", "loki", "pyroscope"}
# Grafana's own pseudo data sources, present everywhere.
BUILT_IN = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}


def uids(node):
    """Every datasource uid in a dashboard, however deeply nested."""
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and isinstance(source.get("uid"), str):
            yield source["uid"]
        elif isinstance(source, str):
            yield source
        for value in node.values():
            yield from uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from uids(value)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    missing = 0
    for dashboard in sorted(Path(argv[0]).glob("**/*.json")):
        used = {uid for uid in uids(json.loads(dashboard.read_text())) if not uid.startswith("$")}
        unknown = sorted(used - OTEL_LGTM_UIDS - BUILT_IN)
        print(f"{'ok     ' if not unknown else 'MISSING'} {dashboard}: {sorted(used)}")
        if unknown:
            print(f"        not provisioned by otel-lgtm: {', '.join(unknown)}")
            missing += 1
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
