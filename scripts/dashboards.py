#!/usr/bin/env python3
"""Writes the Grafana dashboards the Compose stack provisions.

    python3 scripts/dashboards.py           # (re)write instrumentation/grafana/dashboards/*.json
    python3 scripts/dashboards.py --check   # fail if the committed JSON differs from this source
    python3 scripts/dashboards.py --rules   # every PromQL query as a rules file, for promtool

The dashboards are written here as code, so a panel is a few readable lines
and the JSON Grafana loads is generated from them. Edit this file, run it,
and commit both. `cargo test --test it dashboards` checks what the JSON
queries: every data source uid is provisioned, and every metric name is one
that Thespian, Tempo's metrics generator or node_exporter really exports.
"""

import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent.parent / "instrumentation" / "grafana" / "dashboards"

# The dashboard JSON schema of Grafana 12.4 (the stack's image).
SCHEMA_VERSION = 42

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
TEMPO = {"type": "tempo", "uid": "tempo"}
LOKI = {"type": "loki", "uid": "loki"}

# Thespian's own series carry the promoted resource attribute service.name
# as service_name; Tempo's span metrics name the service `service`.
OWN = 'service_name=~"$service"'
SPANS = 'service=~"$service", span_kind="SPAN_KIND_SERVER"'
RATE = "[$__rate_interval]"

# Thespian logs an error on the span where a failure starts. Lines that came
# over OTLP keep the severity as severity_text; lines pushed to Loki directly
# have a `level` label.
ERRORS = '| severity_text="ERROR" or level="error"'
# The warnings Thespian logs when telemetry is lost (docs/signals.md, "When
# a backend is unreachable").
DELIVERY = (
    '|~ "dropped|never reached the collector|not delivered to Loki|could not be exported" '
    '| severity_text="WARN" or level="warn"'
)


def prom(expr, legend, exemplar=False):
    """A PromQL query; `exemplar` shows the trace behind a sample."""
    return {"datasource": PROMETHEUS, "expr": expr, "legendFormat": legend, "exemplar": exemplar, "range": True}


def loki(expr, legend=""):
    """A LogQL query."""
    return {"datasource": LOKI, "expr": expr, "legendFormat": legend, "queryType": "range"}


def quantiles(bucket, labels, by, legend, levels=(0.5, 0.9, 0.99)):
    """Quantiles of a histogram (p50, p90 and p99 unless told), with
    exemplars on the p99 line."""
    return [
        prom(
            f"histogram_quantile({q}, sum by (le, {by}) (rate({bucket}{{{labels}}}{RATE})))",
            f"{legend} p{int(q * 100)}",
            exemplar=q == 0.99,
        )
        for q in levels
    ]


def timeseries(title, targets, unit, description, width=8, stack=False):
    custom = {"fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": targets[0]["datasource"],
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_size": (width, 8),
    }


def logs(title, expr, description, width=24):
    return {
        "type": "logs",
        "title": title,
        "description": description,
        "datasource": LOKI,
        "targets": [loki(expr)],
        "options": {
            "showTime": True,
            "wrapLogMessage": True,
            "enableLogDetails": True,
            "sortOrder": "Descending",
            "dedupStrategy": "none",
        },
        "_size": (width, 10),
    }


def service_map(title, description):
    return {
        "type": "nodeGraph",
        "title": title,
        "description": description,
        "datasource": TEMPO,
        "targets": [{"datasource": TEMPO, "queryType": "serviceMap"}],
        "options": {},
        "_size": (24, 12),
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


def service_variable(metric, label):
    query = f"label_values({metric}, {label})"
    return {
        "name": "service",
        "label": "Service",
        "type": "query",
        "datasource": PROMETHEUS,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".+",
        "current": {"text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard(uid, title, description, variable, panels):
    """Lays the panels out left to right, wrapping at Grafana's 24 columns,
    and numbers them and their queries."""
    x = y = line = 0
    for number, panel in enumerate(panels, start=1):
        width, height = panel.pop("_size")
        if x + width > 24:
            x, y, line = 0, y + line, 0
        panel["id"] = number
        panel["gridPos"] = {"h": height, "w": width, "x": x, "y": y}
        for ref, target in zip("ABCDEFGH", panel.get("targets", [])):
            target["refId"] = ref
        x, line = x + width, max(line, height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["thespian"],
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "time": {"from": "now-30m", "to": "now"},
        "refresh": "30s",
        "fiscalYearStartMonth": 0,
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [variable]},
        "panels": panels,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
    }


def ecosystem_overview():
    return dashboard(
        "thespian-ecosystem",
        "Ecosystem overview",
        "Every service's rate, errors and latency, from Tempo's span metrics and from Thespian's "
        "own metrics, the service graph and the error logs.",
        service_variable("traces_spanmetrics_calls_total", "service"),
        [
            row("From the spans (Tempo's metrics generator)"),
            timeseries(
                "Requests per second",
                [prom(f"sum by (service) (rate(traces_spanmetrics_calls_total{{{SPANS}}}{RATE}))", "{{service}}")],
                "reqps",
                "Server spans per second, by service.",
            ),
            timeseries(
                "Errors by gRPC code",
                [
                    prom(
                        f"sum by (service, rpc_grpc_status_code) (rate(traces_spanmetrics_calls_total"
                        f'{{{SPANS}, status_code="STATUS_CODE_ERROR"}}{RATE}))',
                        "{{service}} code {{rpc_grpc_status_code}}",
                    )
                ],
                "reqps",
                "Server spans with status ERROR per second, by service and by the gRPC code on the "
                "span (rpc.grpc.status_code, kept as a span-metrics dimension in tempo.yaml; "
                "grafana/otel-lgtm's Tempo does not keep it, so there the code is blank).",
                stack=True,
            ),
            timeseries(
                "Latency",
                quantiles("traces_spanmetrics_latency_bucket", SPANS, "service", "{{service}}"),
                "s",
                "p50, p90 and p99 of server span durations. The dots on p99 are exemplars: each "
                "opens the trace it was measured on.",
            ),
            row("From Thespian's own metrics (rpc.server.call.duration)"),
            timeseries(
                "Requests per second",
                [prom(f"sum by (service_name) (rate(rpc_server_call_duration_seconds_count{{{OWN}}}{RATE}))", "{{service_name}}")],
                "reqps",
                "Requests answered per second, by service.",
            ),
            timeseries(
                "Errors by gRPC code",
                [
                    prom(
                        f"sum by (service_name, rpc_grpc_status_code) (rate(rpc_server_call_duration_seconds_count"
                        f'{{{OWN}, rpc_grpc_status_code!="0"}}{RATE}))',
                        "{{service_name}} code {{rpc_grpc_status_code}}",
                    )
                ],
                "reqps",
                "Requests answered with a code other than OK per second, by service and code.",
                stack=True,
            ),
            timeseries(
                "Latency",
                quantiles("rpc_server_call_duration_seconds_bucket", OWN, "service_name", "{{service_name}}"),
                "s",
                "p50, p90 and p99 of rpc.server.call.duration. Exemplars show here when the "
                "metrics carry them (OpenTelemetry SDKs label them trace_id).",
            ),
            row("Who calls whom"),
            service_map(
                "Service graph",
                "Tempo's service graph: calls, errors and latency on every edge, from the "
                "traces_service_graph_* series.",
            ),
            row("Errors in the logs"),
            logs(
                "Error log lines",
                f'{{service_name=~"$service"}} {ERRORS}',
                "Each line's details have a View trace link (the Loki data source's derived fields).",
            ),
        ],
    )


def thespian_internals():
    return dashboard(
        "thespian-internals",
        "Thespian internals",
        "What each Thespian does with its requests and its telemetry, and the host it runs on.",
        service_variable("rpc_server_active_requests", "service_name"),
        [
            row("Requests"),
            timeseries(
                "In flight",
                [
                    prom(f"sum by (service_name) (rpc_server_active_requests{{{OWN}}})", "{{service_name}} served"),
                    prom(f"sum by (service_name) (thespian_in_flight{{{OWN}}})", "{{service_name}} holding a slot"),
                ],
                "short",
                "Requests being served (rpc.server.active_requests) and, under MAX_IN_FLIGHT, "
                "those holding a slot (thespian.in_flight).",
            ),
            timeseries(
                "Queue",
                [prom(f"sum by (service_name) (thespian_queue_length{{{OWN}}})", "{{service_name}} waiting")],
                "short",
                "Requests waiting for a slot under MAX_IN_FLIGHT (thespian.queue.length).",
            ),
            timeseries(
                "Wait for a slot",
                quantiles("thespian_queue_wait_time_seconds_bucket", OWN, "service_name", "{{service_name}}"),
                "s",
                "p50, p90 and p99 of thespian.queue.wait_time: 0 for a request that found a slot free.",
            ),
            timeseries(
                "Failures by cause",
                [
                    prom(
                        f"sum by (service_name, failure_cause) (rate(thespian_failures_total{{{OWN}}}{RATE}))",
                        "{{service_name}} {{failure_cause}}",
                    )
                ],
                "reqps",
                "Failed requests per second by where the failure started (thespian.failures); "
                "queue_full is a request shed because the queue was full.",
                width=12,
                stack=True,
            ),
            timeseries(
                "Calls out",
                quantiles(
                    "rpc_client_call_duration_seconds_bucket",
                    OWN,
                    "service_name, server_address",
                    "{{service_name}} → {{server_address}}",
                    levels=(0.99,),
                ),
                "s",
                "p99 of the calls each Thespian makes (rpc.client.call.duration), by callee.",
                width=12,
            ),
            timeseries(
                "Active scenarios",
                [
                    prom(
                        f"max by (service_name, scenario) (thespian_scenario_active{{{OWN}}})",
                        "{{service_name}} {{scenario}}",
                    )
                ],
                "short",
                "1 while a scenario is active on a Thespian, 0 once it has ended "
                "(thespian.scenario.active): the incident window beside its effects above.",
                width=24,
            ),
            row("Telemetry lost"),
            timeseries(
                "Delivery warnings",
                [loki(f'sum by (service_name) (count_over_time({{service_name=~"$service"}} {DELIVERY} [$__auto]))', "{{service_name}}")],
                "short",
                "Thespian counts the spans, log records and Loki lines it could not deliver and "
                "says so in warnings: a full export queue, a failing collector or Loki, stdout "
                "falling behind, and the totals at shutdown. A warning about a failing collector "
                "reaches Loki only when logs take another way (LOKI_ADDRESS).",
                width=8,
            ),
            logs(
                "What was lost",
                f'{{service_name=~"$service"}} {DELIVERY}',
                "The delivery warnings themselves, with their counts.",
                width=16,
            ),
            row("Host"),
            timeseries(
                "CPU busy",
                [prom('1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}' + RATE + "))", "{{instance}}")],
                "percentunit",
                "Share of CPU time not idle, from node_exporter: a burn step shows up here.",
            ),
            timeseries(
                "Memory available",
                [
                    prom("node_memory_MemAvailable_bytes", "{{instance}} available"),
                    prom("node_memory_MemTotal_bytes", "{{instance}} total"),
                ],
                "bytes",
                "Memory the host can still give, from node_exporter: a memory hold shows up here.",
            ),
            timeseries(
                "Load",
                [prom("node_load1", "{{instance}} 1 min"), prom("node_load5", "{{instance}} 5 min")],
                "short",
                "The host's load average, from node_exporter.",
            ),
        ],
    )


DASHBOARDS = {
    "ecosystem-overview.json": ecosystem_overview,
    "thespian-internals.json": thespian_internals,
}


def render(build):
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


# What Grafana puts in place of its variables, for a query to parse alone.
GRAFANA_VALUES = {"$__rate_interval": "1m", "$__auto": "1m", "$service": ".+"}


def promql_rules():
    """Every PromQL query of the dashboards as a Prometheus recording rule,
    Grafana's variables filled in, so `promtool check rules` parses them."""
    rules = []
    for build in DASHBOARDS.values():
        board = build()
        queries = [a for a in board["annotations"]["list"] if a["datasource"] == PROMETHEUS]
        for panel in board["panels"]:
            queries += [t for t in panel.get("targets", []) if t["datasource"] == PROMETHEUS]
        for query in queries:
            expr = query["expr"]
            for variable, value in GRAFANA_VALUES.items():
                expr = expr.replace(variable, value)
            rules.append({"record": f"dashboard:query_{len(rules) + 1}", "expr": expr})
    # JSON is YAML, which is what promtool reads.
    return json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}, indent=2) + "\n"


def main(argv):
    mode = argv[1] if len(argv) == 2 else None
    if len(argv) > 2 or mode not in (None, "--check", "--rules"):
        sys.exit(f"usage: {argv[0]} [--check | --rules]")
    if mode == "--rules":
        sys.stdout.write(promql_rules())
        return
    check = mode == "--check"
    stale = []
    if not check:
        OUT.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        path = OUT / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
    if stale:
        sys.exit("out of date (run python3 scripts/dashboards.py): " + ", ".join(stale))


if __name__ == "__main__":
    main(sys.argv)
