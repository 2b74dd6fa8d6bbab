# at-gateway: multi-stage build, non-root runtime.
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
# async-nats with a fix not yet released upstream ([patch.crates-io]).
COPY vendor ./vendor
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && mkdir config && touch config/default.toml \
    && cargo build --release --locked --bin at-gateway || true
COPY src ./src
COPY config ./config
COPY schemas ./schemas
# Touch so cargo sees the real sources as newer than the dummy build.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin at-gateway

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin gateway
COPY --from=build /src/target/release/at-gateway /usr/local/bin/at-gateway
COPY config /app/config
COPY schemas /app/schemas
WORKDIR /app
USER gateway
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8001/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/at-gateway"]
CMD ["serve"]
