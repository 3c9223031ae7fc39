# Everyday commands for Thespian. `just` alone lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The sample ecosystem, rendered from example_configs/ecosystem.yaml, with the
# observability stack of instrumentation/docker-compose.yaml included.
compose := "docker compose -f deploy/compose/docker-compose.yaml"

# The lite stack: the same ecosystem with grafana/otel-lgtm for every backend.
compose_lite := "docker compose -f instrumentation/docker-compose.lite.yaml"

# A prebuilt thespian binary to use instead of building one (the ecosystem recipe).
thespian_bin := env("THESPIAN_BIN", "")

# List the recipes
default:
    @just --list

# Run one Thespian on port 6379 with example_configs/standalone.jsonc
run:
    CONFIG_FILE=example_configs/standalone.jsonc cargo run --release

# Run the test suite
test:
    ./scripts/test.sh

# Start Grafana, Tempo, Loki, Prometheus, the collector and the sample ecosystem in Docker
stack-up:
    {{ compose }} up --build --detach
    @echo "Grafana: http://localhost:3000"

# Start the stack with Jaeger receiving every trace as well as Tempo
stack-up-jaeger:
    EXTRA_TRACE_BACKEND=jaeger {{ compose }} --profile jaeger up --build --detach
    @echo "Grafana: http://localhost:3000   Jaeger: http://localhost:16686"

# Start the stack with Grafana Alloy in the collector's place between the Thespians and the backends
stack-up-alloy:
    {{ compose }} --profile alloy up --build --detach
    @# Alloy also answers to otel-collector: with the collector stopped, every Thespian reaches Alloy.
    {{ compose }} stop otel-collector
    @echo "Grafana: http://localhost:3000   Alloy: http://localhost:12345"

# Stop the stack (add -v to also delete the stored telemetry: just stack-down -v)
stack-down *args:
    {{ compose }} --profile jaeger --profile alloy down {{ args }}

# Start the lite stack: the sample ecosystem and grafana/otel-lgtm, one container for all the backends
stack-up-lite:
    {{ compose_lite }} up --build --detach
    @echo "Grafana: http://localhost:3000"

# Stop the lite stack (add -v to also delete its stored telemetry)
stack-down-lite *args:
    {{ compose_lite }} down {{ args }}

# Run the sample ecosystem (example_configs/ecosystem.yaml) as local processes until Ctrl-C: thespian up
ecosystem *args:
    #!/usr/bin/env bash
    set -euo pipefail
    bin="{{ thespian_bin }}"
    if [[ -z "$bin" ]]; then
        cargo build --release
        bin=target/release/thespian
    fi
    exec "$bin" up example_configs/ecosystem.yaml {{ args }}

# Send calls to the local frontend (port 6380), five a second for 30 s unless told otherwise
poke method="A" *args="--rate 5 --duration 30s":
    cargo run --release --quiet -- poke http://localhost:6380 {{ method }} {{ args }}

# Regenerate the Grafana dashboards from scripts/dashboards.py (add --check to only compare)
dashboards *args:
    python3 scripts/dashboards.py {{ args }}

# Run every lint and schema check on the deployment files (scripts/validate.sh)
validate:
    bash scripts/validate.sh
