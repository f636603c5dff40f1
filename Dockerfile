# kazoo-channels container image.
#
#   docker build -t kazoo-channels .                       # runtime image (last stage)
#   docker build --target tests -t kazoo-channels-tests .  # the test suite (compose profile "tests")
#
# Base images are build arguments (compose.yaml passes RUST_IMAGE and RUNTIME_IMAGE),
# so a machine that reaches no registry builds from local stand-ins
# (scripts/local-images).
#
# Caching is by layers only, no BuildKit-only syntax, so the engine's classic
# builder (Compose 1.29's default) and BuildKit (Compose v2) build the same file:
# dependencies are compiled in a layer of their own that only a change of
# Cargo.toml/Cargo.lock rebuilds. The test suite is compiled in the release profile
# (there are no dev-dependencies), so the runtime binary and the tests share that
# one dependency build.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
# deps: the manifest only, with stub targets, so that dependency builds are
# cached in their own layers.
FROM ${RUST_IMAGE} AS deps
WORKDIR /app
ENV CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never
COPY Cargo.toml Cargo.lock ./
# A stub src/lib.rs + src/main.rs, plus one for every [[bin]]/[[bench]]/[[test]]/
# [[example]] the manifest names explicitly (cargo refuses a manifest whose target
# files are missing).
RUN set -eu; \
    mkdir -p src; \
    echo 'fn main() {}' > src/main.rs; \
    : > src/lib.rs; \
    awk -F' *= *' ' \
      function flush() { \
        if (kind != "") { \
          if (path == "") { \
            dir = (kind == "bin") ? "src/bin" : (kind == "bench") ? "benches" : (kind == "test") ? "tests" : "examples"; \
            path = dir "/" name ".rs"; \
          } \
          print path; \
        } \
        kind = ""; name = ""; path = ""; \
      } \
      /^\[\[(bin|bench|test|example)\]\]/ { flush(); kind = $0; gsub(/[][ ]/, "", kind); next } \
      /^\[/ { flush(); next } \
      kind != "" && $1 == "name" { name = $2; gsub(/"/, "", name) } \
      kind != "" && $1 == "path" { path = $2; gsub(/"/, "", path) } \
      END { flush() } \
    ' Cargo.toml | while read -r p; do \
      mkdir -p "$(dirname "$p")"; [ -e "$p" ] || echo 'fn main() {}' > "$p"; \
    done
RUN cargo fetch --locked
# Build every dependency, then forget the stub crate (the stub benches and tests
# stay: the manifest needs them, and the builder needs no real ones).
RUN set -eu; \
    cargo build --release --locked --offline; \
    cargo test --release --locked --offline --no-run; \
    rm -rf src \
           target/release/.fingerprint/kazoo-channels-* \
           target/release/deps/kazoo_channels-* \
           target/release/deps/libkazoo_channels-* \
           target/release/kazoo-channels

# ---------------------------------------------------------------------------
# builder: the release binary, from what the crate needs (build.rs embeds schemas/
# and amqp-bindings/), so a change to tests or scripts does not rebuild it.
FROM deps AS builder
COPY build.rs ./
COPY src ./src
COPY schemas ./schemas
COPY amqp-bindings ./amqp-bindings
RUN cargo build --release --locked --offline \
 && install -m 0755 target/release/kazoo-channels /usr/local/bin/kazoo-channels

# ---------------------------------------------------------------------------
# tests: the suite, compiled on top of the builder; runs against the broker in
# KAZOO_CHANNELS_TEST_AMQP_URL / KAZOO_CHANNELS_TEST_MGMT_URL (compose.yaml).
FROM builder AS tests
COPY benches ./benches
COPY tests ./tests
RUN cargo test --release --locked --offline --no-run
# What tests/docs.rs reads (the documentation's links); copied after the build,
# so a change to it rebuilds nothing. Dockerfile and compose.yaml stay out of
# the context (.dockerignore): the documentation links neither.
COPY README.md CHANGELOG.md ./
COPY docs ./docs
COPY scripts ./scripts
ENV CI=true
CMD ["scripts/test", "--release", "--offline"]

# ---------------------------------------------------------------------------
# runtime: the default (last) stage. The binary needs only glibc (no TLS is
# compiled in), so nothing is installed: the image is the base plus one file.
FROM ${RUNTIME_IMAGE} AS runtime
RUN useradd --system --user-group --uid 10001 --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin kazoo
COPY --from=builder /usr/local/bin/kazoo-channels /usr/local/bin/kazoo-channels
USER kazoo:kazoo
# The worker refreshes this file while its bus session is up and its registry
# is warm; `kazoo-channels health` fails when the file is missing or stale.
ENV RUST_LOG=info \
    KAZOO_CHANNELS__HEALTH__FILE=/tmp/kazoo-channels.health
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["kazoo-channels", "health"]
# SIGTERM: stop taking requests, finish those in flight, close the session, exit
# within cluster.shutdown_grace_secs (10 s; compose gives 30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["kazoo-channels"]
CMD ["run"]
