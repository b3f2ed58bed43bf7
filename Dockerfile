# bursar: a first multi-stage image (hardening — read-only rootfs, dropped capabilities,
# secrets overlay — follows in its own issue).
#
#   docker build -t bursar .
#   docker run -d --name bursar -p 127.0.0.1:3100:3100 -v bursar-data:/data \
#     -e BURSAR_MASTER_PASSWORD_FILE=/run/secrets/master_password bursar
#
# The daemon binds 0.0.0.0 inside the container (it logs a warning saying so); publish the
# port on the host's loopback only, as above.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config cmake clang && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin bursar

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 1001 bursar && useradd --system --uid 1001 --gid bursar --home-dir /data bursar \
 && mkdir -p /data && chown bursar:bursar /data && chmod 0700 /data
COPY --from=build /src/target/release/bursar /usr/local/bin/bursar
USER 1001:1001
ENV BURSAR_DATA_DIR=/data \
    BURSAR_SERVER_BIND=0.0.0.0:3100 \
    BURSAR_URL=http://127.0.0.1:3100
VOLUME ["/data"]
EXPOSE 3100
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["bursar", "status"]
# First run: `docker run --rm -v bursar-data:/data bursar init --auto-provision`
ENTRYPOINT ["bursar"]
CMD ["start"]
