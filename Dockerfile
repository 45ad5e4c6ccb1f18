# syntax=docker/dockerfile:1
# Multi-stage build: compile with the full toolchain, ship a small image that
# runs lifeboat as an unprivileged user.

FROM rust:1.95-slim-bookworm AS build
# jemalloc (the allocator) is C, built with make.
RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that source edits do not rebuild them (empty
# sources stand in for the crate's own; see deploy/stub-sources.sh).
# The image runs the proxy, not the demo: without the default `demo`
# feature nothing of lifeboat-sim (sim/) is built, so its stub stays.
COPY Cargo.toml Cargo.lock ./
COPY sim/Cargo.toml ./sim/
COPY deploy/stub-sources.sh /tmp/
RUN sh /tmp/stub-sources.sh \
    && cargo build --release --locked --no-default-features --bin lifeboat \
    && rm -rf src benches
COPY src ./src
COPY config ./config
COPY benches ./benches
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --no-default-features --bin lifeboat

FROM debian:bookworm-slim
# No TLS roots or libraries are needed: rustls is compiled in.
RUN useradd --system --no-create-home --shell /usr/sbin/nologin lifeboat \
    && mkdir -p /etc/lifeboat /var/lib/lifeboat \
    && chown lifeboat /var/lib/lifeboat
COPY --from=build /src/target/release/lifeboat /usr/local/bin/lifeboat
# The reference config, listening on all interfaces (inside a container,
# loopback is unreachable). Mount your own over it.
COPY --from=build /src/config/lifeboat.toml /etc/lifeboat/lifeboat.toml
RUN sed -i 's|^http = "127.0.0.1:8080"|http = "0.0.0.0:8080"|' /etc/lifeboat/lifeboat.toml
USER lifeboat
WORKDIR /var/lib/lifeboat
# 8080: plain HTTP (h1, h2c); 8443: TLS when configured.
EXPOSE 8080 8443
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/lifeboat"]
CMD ["run", "--config", "/etc/lifeboat/lifeboat.toml"]
