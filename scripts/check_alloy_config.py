#!/usr/bin/env python3
"""Checks Grafana Alloy's pipeline against the OpenTelemetry Collector's.

    python3 scripts/check_alloy_config.py instrumentation/alloy/config.alloy \\
        instrumentation/otel-collector/config.yaml

No Alloy binary comes from a package registry, so `alloy validate` cannot run
in CI. Instead this reads the Alloy file with a small parser for the part of
Alloy's syntax it uses (blocks, labels, attributes, strings, numbers, lists,
component references, comments) and checks that:

  - it parses, every component is one this script knows, and every argument
    and block inside it is one that component takes, per scripts/alloy-components.json
    (a snapshot of Alloy v1.18.1's reference docs: arguments and blocks only,
    not their types or required-ness);
  - every reference names a declared component and an export it has;
  - for traces, logs and metrics alike, following the receiver's outputs
    through the processors reaches exporters with the same protocol and
    endpoint as the collector's pipeline for that signal, through the same
    processors, and the receiver listens where the collector's does.

It prints each signal's route and exits 1 if anything differs. With
--self-test first, it instead makes a few small edits to the file (a
misspelt argument, a dangling reference, another endpoint, ...) and checks
that each one is caught.
"""

import json
import re
import sys
from pathlib import Path

import yaml  # PyYAML, installed alongside yamllint

SCHEMA = json.loads((Path(__file__).parent / "alloy-components.json").read_text())
# Components this stack uses, with what each exports (Alloy v1.18 reference).
EXPORTS = {
    "otelcol.receiver.otlp": set(),
    "otelcol.processor.memory_limiter": {"input"},
    "otelcol.processor.batch": {"input"},
    "otelcol.exporter.otlp": {"input"},
    "otelcol.exporter.otlphttp": {"input"},
}
# Alloy component kind -> the collector's name for the same thing.
COLLECTOR_KIND = {
    "otelcol.processor.memory_limiter": "memory_limiter",
    "otelcol.processor.batch": "batch",
    "otelcol.exporter.otlp": "otlp_grpc",
    "otelcol.exporter.otlphttp": "otlp_http",
}
SIGNALS = ("traces", "logs", "metrics")

_TOKEN = re.compile(
    r"""(?P<space>\s+|//[^\n]*|/\*.*?\*/)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|`[^`]*`)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<punct>[{}\[\]=,()])""",
    re.VERBOSE | re.DOTALL,
)


class AlloySyntaxError(Exception):
    pass


def tokens(text: str):
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            line = text.count("\n", 0, pos) + 1
            raise AlloySyntaxError(f"line {line}: unexpected {text[pos:pos + 20]!r}")
        if match.lastgroup != "space":
            yield match.lastgroup, match.group(), text.count("\n", 0, pos) + 1
        pos = match.end()


class Parser:
    """Blocks become {"name", "label", "attrs", "blocks", "line"}; values
    become Python strings, numbers, lists, dicts, or ("ref", dotted name)."""

    def __init__(self, text: str):
        self.toks = list(tokens(text))
        self.i = 0

    def peek(self, offset=0):
        i = self.i + offset
        last = self.toks[-1][2] if self.toks else 1
        return self.toks[i] if i < len(self.toks) else ("end", "end of file", last)

    def take(self, kind=None, value=None):
        tok = self.peek()
        if (kind and tok[0] != kind) or (value and tok[1] != value):
            want = value or kind
            raise AlloySyntaxError(f"line {tok[2]}: expected {want}, found {tok[1]!r}")
        self.i += 1
        return tok

    def body(self, closing=None):
        attrs, blocks = {}, []
        while self.peek()[0] != "end" and self.peek()[1] != closing:
            kind, name, line = self.take("ident")
            if self.peek()[1] == "=":
                self.take(value="=")
                if name in attrs:
                    raise AlloySyntaxError(f"line {line}: {name} set twice")
                attrs[name] = self.value()
                continue
            label = None
            if self.peek()[0] == "string":
                label = self.take("string")[1][1:-1]
            self.take(value="{")
            inner_attrs, inner_blocks = self.body("}")
            self.take(value="}")
            blocks.append(
                {"name": name, "label": label, "attrs": inner_attrs, "blocks": inner_blocks, "line": line}
            )
        return attrs, blocks

    def value(self):
        kind, text, line = self.take()
        if kind == "string":
            return text[1:-1]
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "ident" and text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if kind == "ident" and self.peek()[1] == "(":
            self.take(value="(")
            args = self.items(")")
            return ("call", text, args)
        if kind == "ident":
            return ("ref", text, line)
        if text == "[":
            return self.items("]")
        if text == "{":
            obj = {}
            while self.peek()[1] != "}":
                key = self.take()[1].strip('"')
                self.take(value="=")
                obj[key] = self.value()
                if self.peek()[1] == ",":
                    self.take(value=",")
            self.take(value="}")
            return obj
        raise AlloySyntaxError(f"line {line}: unexpected {text!r}")

    def items(self, closing):
        out = []
        while self.peek()[1] != closing:
            out.append(self.value())
            if self.peek()[1] != ",":
                break
            self.take(value=",")
        self.take(value=closing)
        return out


def check_schema(block: dict, schema: dict, where: str, errors: list):
    """Every argument and nested block of `block` is one `schema` allows."""
    for name in block["attrs"]:
        if name not in schema["attrs"]:
            errors.append(f"line {block['line']}: {where} takes no argument {name}")
    for inner in block["blocks"]:
        if inner["label"] is not None or inner["name"] not in schema["blocks"]:
            errors.append(f"line {inner['line']}: {where} has no block {inner['name']}")
            continue
        check_schema(inner, schema["blocks"][inner["name"]], f"{where} > {inner['name']}", errors)


def sub(block: dict, name: str) -> dict:
    found = [b for b in block["blocks"] if b["name"] == name]
    return found[0] if found else {"attrs": {}, "blocks": []}


def alloy_routes(text: str, errors: list):
    """{signal: [(processor kinds), (exporter kind, endpoint), ...]} and the
    receiver's endpoints, following the graph from the OTLP receiver."""
    _, blocks = Parser(text).body()
    components = {}
    for block in blocks:
        if block["name"] in ("logging", "tracing"):
            continue
        if block["name"] not in EXPORTS or block["name"] not in SCHEMA:
            errors.append(f"line {block['line']}: unknown component {block['name']}")
            continue
        check_schema(block, SCHEMA[block["name"]], block["name"], errors)
        components[f"{block['name']}.{block['label']}"] = block

    def target(ref):
        if not (isinstance(ref, tuple) and ref[0] == "ref"):
            errors.append(f"an output lists {ref!r}, not a component's export")
            return None
        component, _, export = ref[1].rpartition(".")
        block = components.get(component)
        if block is None or export not in EXPORTS[block["name"]]:
            errors.append(f"line {ref[2]}: {ref[1]} is not a declared component's export")
            return None
        return block

    receivers = [b for b in components.values() if b["name"] == "otelcol.receiver.otlp"]
    if len(receivers) != 1:
        errors.append(f"expected one otelcol.receiver.otlp, found {len(receivers)}")
        return {}, {}
    receiver = receivers[0]
    listens = {p: sub(receiver, p)["attrs"].get("endpoint") for p in ("grpc", "http")}
    routes = {}
    for signal in SIGNALS:
        processors, exporters = [], set()
        frontier = sub(receiver, "output")["attrs"].get(signal, [])
        for _ in range(10):
            following = []
            for block in filter(None, map(target, frontier)):
                kind = COLLECTOR_KIND[block["name"]]
                if block["name"].startswith("otelcol.processor."):
                    processors.append(kind)
                    following += sub(block, "output")["attrs"].get(signal, [])
                else:
                    endpoint = sub(block, "client")["attrs"].get("endpoint")
                    exporters.add((kind, endpoint))
            frontier = following
        routes[signal] = (tuple(processors), exporters)
    return routes, listens


def collector_routes(config: dict):
    routes = {}
    for signal in SIGNALS:
        pipeline = config["service"]["pipelines"][signal]
        exporters = {
            (name.split("/")[0], config["exporters"][name]["endpoint"])
            for name in pipeline["exporters"]
        }
        processors = tuple(name.split("/")[0] for name in pipeline.get("processors", []))
        routes[signal] = (processors, exporters)
    protocols = config["receivers"]["otlp"]["protocols"]
    listens = {p: (protocols.get(p) or {}).get("endpoint") for p in ("grpc", "http")}
    return routes, listens


def problems(alloy_text: str, collector: dict, show=print) -> list:
    """What keeps the Alloy pipeline from matching the collector's."""
    errors: list = []
    try:
        alloy, alloy_listens = alloy_routes(alloy_text, errors)
    except AlloySyntaxError as error:
        return [str(error)]
    routes, collector_listens = collector_routes(collector)
    if alloy_listens != collector_listens:
        errors.append(f"receiver listens on {alloy_listens}, the collector on {collector_listens}")
    for signal in SIGNALS:
        got, want = alloy.get(signal), routes[signal]
        show(f"{signal}: alloy {got}")
        show(f"{' ' * len(signal)}  collector {want}")
        if got != want:
            errors.append(f"{signal}: Alloy routes {got}, the collector {want}")
    return errors


# Edits that each must make the check fail, so that it is known to be able to.
MUTATIONS = [
    ("a misspelt argument", r"flush_timeout", "flush_timout"),
    ("a block the component lacks", r"tls \{", "tlz {"),
    ("a reference to no component", r"exporter\.otlphttp\.loki\.input", "exporter.otlphttp.lokki.input"),
    ("another endpoint", r'"tempo:4317"', '"tempo:4318"'),
    ("another listening address", r'"0\.0\.0\.0:4318"', '"127.0.0.1:4318"'),
    ("a brace left open", r"\}\s*$", ""),
]


def main(argv: list[str]) -> int:
    self_test = argv[:1] == ["--self-test"]
    argv = argv[1:] if self_test else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    alloy_file, collector_file = map(Path, argv)
    text = alloy_file.read_text()
    collector = yaml.safe_load(collector_file.read_text())
    if self_test:
        failed = 0
        for what, pattern, replacement in MUTATIONS:
            mutated, count = re.subn(pattern, replacement, text, count=1)
            caught = count and problems(mutated, collector, show=lambda _: None)
            print(f"{'caught ' if caught else 'MISSED '} {what}")
            failed += not caught
        return 1 if failed else 0
    errors = problems(text, collector)
    for error in errors:
        print(f"{alloy_file}: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
