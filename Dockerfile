# syntax=docker/dockerfile:1
# Build: docker build -t dli-graphql .
# Run:   docker run --rm -p 8080:8080 -e DLI_REGION=cn-north-4 dli-graphql

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY tests ./tests
COPY schema.graphql ./
RUN cargo build --release --locked --bin dli-graphql

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home dli
COPY --from=build /src/target/release/dli-graphql /usr/local/bin/dli-graphql
USER 10001
ENV DLI_GRAPHQL_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dli-graphql"]
