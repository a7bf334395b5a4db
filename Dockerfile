# syntax=docker/dockerfile:1
# Build: the host and, through templates/artifacts' build script, every built-in template
# component (which the binary embeds). Runtime: a slim Debian with what renders need.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The pinned toolchain (rust-toolchain.toml) plus the guest target.
COPY rust-toolchain.toml ./
RUN rustup show active-toolchain && rustup target add wasm32-wasip2
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vidfarm \
    && cp target/release/vidfarm /usr/local/bin/vidfarm

FROM debian:bookworm-slim AS runtime
# ffmpeg for the FFmpeg render path; CA certificates for provider calls over TLS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates ffmpeg tini \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --create-home --home-dir /var/lib/vidfarm vidfarm
COPY --from=build /usr/local/bin/vidfarm /usr/local/bin/vidfarm
USER vidfarm
WORKDIR /var/lib/vidfarm
ENV VIDFARM_DATA_DIR=/var/lib/vidfarm/data \
    VIDFARM_LISTEN=0.0.0.0:8080 \
    VIDFARM_ENV=production
EXPOSE 8080
VOLUME ["/var/lib/vidfarm/data"]
ENTRYPOINT ["/usr/bin/tini", "--", "vidfarm"]
CMD ["serve"]
