# syntax=docker/dockerfile:1
# Build: docker build -t dli-graphql .
# Run:   docker run --rm -p 8080:8080 -e DLI_REGION=cn-north-4 dli-graphql
#
# Dependencies are compiled in their own layer (cargo-chef), so a change to the service's
# code rebuilds only the service. The runtime is distroless (glibc, CA certificates, no
# shell), runs as a non-root user, and checks its health with the binary itself.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin dli-graphql
COPY . .
RUN cargo build --release --locked --bin dli-graphql

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/dli-graphql /usr/local/bin/dli-graphql
USER 65532:65532
ENV DLI_GRAPHQL_LISTEN=0.0.0.0:8080 \
    DLI_GRAPHQL_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/dli-graphql", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/dli-graphql"]
