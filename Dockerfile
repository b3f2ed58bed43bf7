# bursar: a hardened image. Build, first boot and run with compose (docker-compose.yml +
# docker-compose.secrets.yml; see README "Deployment"):
#
#   docker build -t bursar .
#   docker compose -f docker-compose.yml -f docker-compose.secrets.yml up -d
#
# Stages: `build` compiles the release binary (dependencies in their own layer, cached on
# Cargo.lock); `runtime` is the image without its binary (non-root 1001, /data volume,
# healthcheck); the last stage adds the binary built in `build`. `prebuilt` adds a binary
# built outside instead (same Debian 12 glibc): `scripts/container-test` builds that target.
# No secret is in any layer or build argument: the master password reaches the container as
# a mounted file at run time (BURSAR_MASTER_PASSWORD_FILE).

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependencies first, in a layer that only Cargo.toml / Cargo.lock invalidate: the manifest's
# targets get empty stand-ins, then the real sources replace them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches tests/it \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > benches/core.rs && echo 'fn main() {}' > benches/e2e.rs \
 && echo 'fn main() {}' > tests/it/main.rs \
 && cargo build --release --locked --bin bursar \
 && rm -rf src target/release/bursar target/release/deps/bursar-* target/release/deps/libbursar-* \
      target/release/.fingerprint/bursar-*
# Only what the binary is built from (not tests/, benches/, docs/).
COPY src ./src
RUN cargo build --release --locked --bin bursar \
 && install -D -m 0755 target/release/bursar /out/bursar

FROM ${RUNTIME_IMAGE} AS runtime
# No package is installed: the binary needs glibc only. TLS roots are the system's when the
# image has them (mount a bundle and set SSL_CERT_FILE for a private CA), otherwise the
# Mozilla roots built into bursar.
RUN groupadd --gid 1001 bursar \
 && useradd --no-log-init --uid 1001 --gid 1001 --home-dir /data --no-create-home --shell /usr/sbin/nologin bursar \
 && mkdir -m 0700 /data && chown 1001:1001 /data
USER 1001:1001
# The daemon binds 0.0.0.0 only inside the container; publish it on the host's loopback
# (`-p 127.0.0.1:3100:3100`). Owner messages name `[owner] domain` (BURSAR_OWNER_DOMAIN),
# links `[server] public_url` (BURSAR_SERVER_PUBLIC_URL): set them to the address the owner
# actually uses when it is not 127.0.0.1:3100.
ENV BURSAR_DATA_DIR=/data \
    BURSAR_SERVER_BIND=0.0.0.0:3100 \
    BURSAR_URL=http://127.0.0.1:3100
VOLUME ["/data"]
EXPOSE 3100
# `bursar health` exits 0 only when the daemon answers /health; it needs no other tool.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["bursar", "health"]
ENTRYPOINT ["bursar"]
CMD ["start"]

FROM runtime AS prebuilt
COPY bursar /usr/local/bin/bursar

FROM runtime
COPY --from=build /out/bursar /usr/local/bin/bursar
