# kazoo-channels container image.
#
#   docker build -t kazoo-channels .                 # runtime image (last stage)
#   docker build --target tests -t kazoo-channels-tests .
#
# The crate embeds schemas/ and amqp-bindings/ with include_str!, so both must be
# in the build context (see .dockerignore).

# ---------------------------------------------------------------------------
# deps: the manifest only, with dummy targets, so that dependency builds are
# cached in their own layers and only rebuilt when Cargo.toml/Cargo.lock change.
FROM rust:1-bookworm AS deps
WORKDIR /app
ENV CARGO_TERM_COLOR=never
COPY Cargo.toml Cargo.lock ./
# Dummy src/lib.rs + src/main.rs, plus a stub for every [[bin]]/[[bench]]/[[test]]/
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

# ---------------------------------------------------------------------------
# builder: release binary.
FROM deps AS builder
RUN cargo build --release --locked \
 && rm -rf src \
           target/release/.fingerprint/kazoo-channels-* \
           target/release/deps/kazoo_channels-* \
           target/release/deps/libkazoo_channels-* \
           target/release/kazoo-channels
COPY src ./src
COPY schemas ./schemas
COPY amqp-bindings ./amqp-bindings
# Optional paths: a wildcard that matches nothing copies nothing.
COPY benche[s] ./benches/
COPY build.r[s] ./
RUN find src -name '*.rs' -exec touch {} + \
 && cargo build --release --locked \
 && install -m 0755 target/release/kazoo-channels /usr/local/bin/kazoo-channels

# ---------------------------------------------------------------------------
# tests: toolchain + full sources; runs the test suite (compose profile "tests").
FROM deps AS tests
RUN cargo test --locked --no-run \
 && rm -rf src \
           target/debug/.fingerprint/kazoo-channels-* \
           target/debug/deps/kazoo_channels-* \
           target/debug/deps/libkazoo_channels-* \
           target/debug/kazoo-channels
COPY . .
RUN find src tests benches -name '*.rs' -exec touch {} + 2>/dev/null || true; \
    cargo test --locked --no-run
ENV CI=true
CMD ["scripts/test"]

# ---------------------------------------------------------------------------
# runtime: the default (last) stage.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --uid 10001 --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin kazoo
COPY --from=builder /usr/local/bin/kazoo-channels /usr/local/bin/kazoo-channels
USER kazoo:kazoo
ENV RUST_LOG=info
STOPSIGNAL SIGTERM
ENTRYPOINT ["kazoo-channels"]
CMD ["run"]
