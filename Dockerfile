# syntax=docker/dockerfile:1

# Thespian container image.
#
#   docker build -t thespian .
#   docker run --rm -p 6379:6379 -e CONFIG_FILE=/etc/thespian/config.jsonc \
#     -v "$PWD/deploy/compose/configs/database.jsonc:/etc/thespian/config.jsonc:ro" thespian
#
# The runtime image holds the thespian binary and the Rhai scripts from the
# repository's scripts/ folder at /scripts. Mount your own scripts over
# /scripts, and a config file anywhere with CONFIG_FILE pointing at it.

ARG RUST_VERSION=1.95.0

# --- Build ---------------------------------------------------------------------
# The full image, not -slim: jemalloc, Thespian's allocator, builds from C
# sources with make, which -slim lacks. Only the binary leaves this stage.
# It is built with Cargo.toml's `dist` profile, optimised across crates: the
# slowest build and the fastest server, built once per image.
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /build

# Dependencies first, in their own layer: it is rebuilt only when the manifest,
# lock file, build script or proto change, not on every source edit. protoc
# comes from the protoc-bin-vendored crate, so no extra system packages are
# needed.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --profile dist --locked \
    && rm -rf src

# Then the sources. COPY keeps the build context's modification times, which
# can be older than the placeholder build above; touching them makes cargo
# rebuild the crate itself.
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    find src -type f -name '*.rs' -exec touch {} + \
    && cargo build --profile dist --locked \
    && cp target/dist/thespian /thespian

# --- Runtime -------------------------------------------------------------------
# Distroless with glibc and CA certificates, Debian 12 to match the builder.
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="thespian" \
      org.opencontainers.image.description="A gRPC service that acts out configured pretend work and reports it as OpenTelemetry traces, logs and metrics." \
      org.opencontainers.image.licenses="MIT"

COPY --from=builder /thespian /usr/local/bin/thespian
# Owned by root and read-only to the server, like the binary.
COPY scripts/ /scripts/

ENV PORT=6379 \
    SCRIPTS_DIR=/scripts \
    LOG_FORMAT=json

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 6379

# Exec form: the distroless image has no shell. `thespian health` asks the
# standard grpc.health.v1 service on 127.0.0.1:$PORT and exits 0 when SERVING.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/thespian", "health"]

ENTRYPOINT ["/usr/local/bin/thespian"]
CMD ["serve"]
