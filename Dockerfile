# syntax=docker/dockerfile:1.7
#
# multiomix-aws-emr: a two-stage build.
#   docker build -t multiomix-aws-emr .
#
# The build stage compiles the dependencies first, against stub sources, so that this
# slow layer is reused as long as Cargo.toml and Cargo.lock do not change. The runtime
# stage holds the binary and nothing else (no shell, no package manager).

# The toolchain the lock file is tested with; Debian 12 (bookworm) matches the runtime
# image, so the binary links against the same glibc.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src

# Dependency layer: a build of the locked dependencies with empty sources.
# The workspace's other members (test fakes, the benchmark) are not built, but cargo
# needs their manifests to read the workspace.
COPY Cargo.toml Cargo.lock ./
COPY fakes/Cargo.toml fakes/Cargo.toml
COPY bench/Cargo.toml bench/Cargo.toml
RUN mkdir -p src fakes/src bench/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs fakes/src/lib.rs \
    && echo 'fn main() {}' > bench/src/main.rs \
    && cargo build --release --locked -p multiomix-aws-emr --bin multiomix-aws-emr \
    && rm -rf src fakes/src bench/src

# The crate itself. `touch` makes cargo see the real sources as newer than the stubs.
# SQLX_OFFLINE makes compile-time checked queries (if any) use the committed .sqlx data
# instead of connecting to a database during the build.
ENV SQLX_OFFLINE=true
COPY . .
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p multiomix-aws-emr --bin multiomix-aws-emr \
    && mkdir -p /out/data \
    && cp target/release/multiomix-aws-emr /out/multiomix-aws-emr

# Runtime: distroless with glibc and libgcc, as user 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime

COPY --from=build /out/multiomix-aws-emr /usr/local/bin/multiomix-aws-emr
# The folder of the SQLite store, owned by the user the service runs as (the image has
# no shell to create it with).
COPY --from=build --chown=65532:65532 /out/data /data

# Defaults of the contract, so that `docker run` needs only the required variables
# (EMR_VIRTUAL_CLUSTER_ID, EMR_EXECUTION_ROLE_ARN, EMR_S3_BUCKET) and credentials.
ENV PORT=8003 \
    HOST=0.0.0.0 \
    JOB_BACKEND=emr \
    DATABASE_URL=sqlite:/data/multiomix-aws-emr.db \
    EMR_RELEASE_LABEL=emr-6.9.0-latest \
    EMR_DRIVER_CORES=1 \
    EMR_DRIVER_MEMORY=4g \
    EMR_EXECUTOR_CORES=1 \
    EMR_EXECUTOR_MEMORY=4g \
    EMR_DRIVER_MAX_RESULT_SIZE=2g \
    EMR_EXECUTOR_HEARTBEAT_INTERVAL=600s \
    EMR_NETWORK_TIMEOUT=2400s \
    EMR_EXECUTOR_INSTANCES=3 \
    DATASETS_PATH=/var/data \
    RESULTS_PATH=/var/results \
    MULTIOMIX_URL=http://multiomix/feature-selection/aws-notification/ \
    EKS_EMR_SERVICE_URL=multiomix-aws-emr \
    AWS_DEFAULT_REGION=us-east-1 \
    ALGO_BLIND_SEARCH_ENTRYPOINT=main.py \
    ALGO_BLIND_SEARCH_PY_FILES=scripts.zip \
    ALGO_BBHA_ENTRYPOINT=main.py \
    ALGO_BBHA_PY_FILES=scripts.zip \
    ENTRYPOINT_ARGS_KEY_PREFIX=-- \
    SLEEP_TIME=10

VOLUME ["/data"]
EXPOSE 8003

# Numeric, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532

# No HEALTHCHECK: the image has no shell or curl to run one. Kubernetes probes the
# service over HTTP instead: liveness on GET /health, readiness on GET /ready (see
# templates/kubernetes/deployment.yaml). With plain Docker, probe from outside, e.g.
# `curl -f http://127.0.0.1:8003/ready`.
ENTRYPOINT ["/usr/local/bin/multiomix-aws-emr"]
