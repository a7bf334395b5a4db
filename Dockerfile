# syntax=docker/dockerfile:1
# Build: the host and, through templates/artifacts' build script, every built-in template
# component (which the binary embeds); the Remotion renderer's bundle. Runtime: a slim Debian
# with what renders need (ffmpeg, Node, Chromium, the renderer).

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The pinned toolchain plus the guest target, by the script the README's first command runs.
COPY rust-toolchain.toml ./
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh toolchain
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vidfarm \
    && cp target/release/vidfarm /usr/local/bin/vidfarm

# The Remotion renderer: its pinned npm packages and the compositions bundled once.
FROM node:20-bookworm-slim AS remotion
WORKDIR /opt/vidfarm/remotion
COPY renderers/remotion/package.json renderers/remotion/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY renderers/remotion/ ./
RUN npm run bundle

FROM debian:bookworm-slim AS runtime
# ffmpeg for the FFmpeg render path and ffprobe; Node and Chromium for Remotion renders;
# fonts so captions have glyphs; CA certificates for provider calls over TLS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates ffmpeg chromium fonts-dejavu-core tini \
    && rm -rf /var/lib/apt/lists/*
COPY --from=remotion /usr/local/bin/node /usr/local/bin/node
COPY --from=remotion /opt/vidfarm/remotion /opt/vidfarm/remotion
RUN useradd --system --create-home --home-dir /var/lib/vidfarm vidfarm
COPY --from=build /usr/local/bin/vidfarm /usr/local/bin/vidfarm
USER vidfarm
WORKDIR /var/lib/vidfarm
ENV VIDFARM_DATA_DIR=/var/lib/vidfarm/data \
    VIDFARM_LISTEN=0.0.0.0:8080 \
    VIDFARM_REMOTION_DIR=/opt/vidfarm/remotion \
    VIDFARM_CHROMIUM=/usr/bin/chromium \
    VIDFARM_ENV=production
EXPOSE 8080
VOLUME ["/var/lib/vidfarm/data"]
ENTRYPOINT ["/usr/bin/tini", "--", "vidfarm"]
CMD ["serve"]
