# Images of kubegost, from one build:
#   docker build --target proxy    -t kubegost/proxy:0.1.0 .     # gost-proxy (engine, sidecar)
#   docker build --target operator -t kubegost/operator:0.1.0 .  # gost-operator
# Both final images are FROM scratch, user 65532, no CA store: the operator image holds one
# static binary; the proxy image adds a static busybox as /bin/sh for hook commands.
# scripts/testenv/images.sh builds the same images without Docker (the test machines have no
# Docker engine): it runs the same scripts/build-static.sh and reads the final stages below
# (COPY --from=build, ENV, USER, EXPOSE, ENTRYPOINT; nothing else is allowed there), and
# scripts/testenv/check-images.sh fails when an image it built differs from this file.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/build-static.sh /out gost-proxy gost-operator

# Hook commands (`sh -c '…'`, as in GOST's examples) need a shell: Debian's static busybox,
# installed as /bin/sh. It runs its applets (echo, date, cat, sleep, wget, …) without symlinks.
FROM debian:bookworm-slim AS hook-tools
RUN apt-get update && apt-get install -y --no-install-recommends busybox-static \
    && rm -rf /var/lib/apt/lists/*

FROM scratch AS proxy
COPY --from=build /out/gost-proxy /usr/local/bin/gost-proxy
COPY --from=hook-tools /bin/busybox /bin/sh
ENV PATH=/usr/local/bin:/bin
USER 65532:65532
EXPOSE 15300
ENTRYPOINT ["/usr/local/bin/gost-proxy"]

FROM scratch AS operator
COPY --from=build /out/gost-operator /usr/local/bin/gost-operator
ENV PATH=/usr/local/bin
USER 65532:65532
EXPOSE 8080 9443
ENTRYPOINT ["/usr/local/bin/gost-operator"]
