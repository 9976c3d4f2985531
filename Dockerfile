# syntax=docker/dockerfile:1
# Build: a release binary with SQLite and libpq compiled in (no system libraries needed).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo .cargo
COPY src src
COPY migrations migrations
COPY openapi openapi
# The benchmark's helpers are declared in Cargo.toml, so their sources must be present.
COPY bench bench
RUN cargo build --release --locked --bin dossier && cp target/release/dossier /dossier

# Run: a small non-root image; SQLite data lives in the /data volume.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /data dossier \
    && mkdir -p /data && chown dossier /data
COPY --from=build /dossier /usr/local/bin/dossier
USER dossier
WORKDIR /data
ENV DATABASE_URL=sqlite:///data/dossier.db \
    DOSSIER_BIND=0.0.0.0:8080 \
    DOSSIER_ENV=production
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health/ready || exit 1
ENTRYPOINT ["dossier"]
CMD ["serve"]
