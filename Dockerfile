# Images of kubegost, from one build:
#   docker build --target proxy    -t kubegost/proxy:0.1.0 .     # gost-proxy (engine, sidecar)
#   docker build --target operator -t kubegost/operator:0.1.0 .  # gost-operator
# Both final images are FROM scratch: one static binary, no shell, no CA store, user 65532.
# scripts/testenv/images.sh builds the same images without Docker (the test machines have no
# Docker engine): it runs the same scripts/build-static.sh and reads the final stages below
# (COPY --from=build, ENV, USER, EXPOSE, ENTRYPOINT; nothing else is allowed there), and
# scripts/testenv/check-images.sh fails when an image it built differs from this file.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/build-static.sh /out gost-proxy gost-operator

FROM scratch AS proxy
COPY --from=build /out/gost-proxy /usr/local/bin/gost-proxy
ENV PATH=/usr/local/bin
USER 65532:65532
EXPOSE 15021
ENTRYPOINT ["/usr/local/bin/gost-proxy"]

FROM scratch AS operator
COPY --from=build /out/gost-operator /usr/local/bin/gost-operator
ENV PATH=/usr/local/bin
USER 65532:65532
EXPOSE 8080 9443
ENTRYPOINT ["/usr/local/bin/gost-operator"]
