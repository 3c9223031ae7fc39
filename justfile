# Everyday commands for Thespian. `just` alone lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The sample ecosystem, rendered from example_configs/ecosystem.yaml, with the
# observability stack of instrumentation/docker-compose.yaml included.
compose := "docker compose -f deploy/compose/docker-compose.yaml"

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

# Stop the stack (add -v to also delete the stored telemetry: just stack-down -v)
stack-down *args:
    {{ compose }} --profile jaeger down {{ args }}

# Run frontend, orders and database as local processes on ports 6380-6382 until Ctrl-C
ecosystem:
    #!/usr/bin/env bash
    set -euo pipefail
    bin="{{ thespian_bin }}"
    if [[ -z "$bin" ]]; then
        cargo build --release
        bin=target/release/thespian
    fi
    logs=target/ecosystem
    mkdir -p "$logs"

    pids=()
    cleanup() {
        trap - EXIT INT TERM
        if ((${#pids[@]})); then
            kill "${pids[@]}" 2>/dev/null || true
            # Up to 5 s for a graceful shutdown (spans flushed), then force.
            for _ in $(seq 50); do
                kill -0 "${pids[@]}" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "${pids[@]}" 2>/dev/null || true
            wait "${pids[@]}" 2>/dev/null || true
        fi
        echo "ecosystem stopped"
    }
    trap cleanup EXIT
    # Ctrl-C is the way to stop the ecosystem, not a failure.
    trap 'exit 0' INT
    trap 'exit 143' TERM

    # Downstream first, so each caller finds its callee already serving.
    for instance in database:6382 orders:6381 frontend:6380; do
        name="${instance%:*}" port="${instance#*:}"
        PORT="$port" SERVICE_NAME="$name" SCRIPTS_DIR=scripts \
            CONFIG_FILE="example_configs/ecosystem-local/$name.jsonc" \
            "$bin" serve >"$logs/$name.log" 2>&1 &
        pids+=("$!")
        for attempt in $(seq 50); do
            if "$bin" health "http://127.0.0.1:$port" >/dev/null 2>&1; then
                echo "$name serving on :$port (log: $logs/$name.log)"
                break
            fi
            if ((attempt == 50)); then
                echo "$name did not become healthy on :$port; last log lines:" >&2
                tail -n 20 "$logs/$name.log" >&2
                exit 1
            fi
            sleep 0.2
        done
    done

    echo "Ready: just poke   (Ctrl-C stops all three)"
    # Returns as soon as any instance exits; the EXIT trap stops the others.
    wait -n

# Send calls to the local frontend (port 6380), five a second for 30 s unless told otherwise
poke method="A" *args="--rate 5 --duration 30s":
    cargo run --release --quiet -- poke http://localhost:6380 {{ method }} {{ args }}

# Run every lint and schema check on the deployment files (scripts/validate.sh)
validate:
    bash scripts/validate.sh
