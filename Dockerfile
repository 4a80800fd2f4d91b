# The imprint image: the one `imprint` binary (node agent, controller,
# record, recommend, run) with exactly the shared libraries it loads.
#
#   docker build -t registry.example.com/imprint:0.1.0 .
#   docker push registry.example.com/imprint:0.1.0
#   helm install imprint charts/imprint -n imprint-system --create-namespace \
#     --set image.repository=registry.example.com/imprint --set image.tag=0.1.0
#
# The committed BPF object (probes/imprint.bpf.o) is embedded: no clang is
# needed. Without Docker, e2e/images/imprint.sh assembles the same image
# from a built binary as an OCI tarball (ctr images import, kind load
# image-archive).
FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libseccomp-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only the sources: the build never sees a local target/ directory.
COPY Cargo.toml Cargo.lock ./
COPY probes probes
COPY crd crd
COPY agent agent
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p imprint \
 && cp target/release/imprint /imprint \
 && mkdir -p /libs \
 && cp -L /usr/lib/*-linux-gnu/libseccomp.so.2 /libs/

# distroless/cc: glibc, libgcc_s and libm, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /libs/libseccomp.so.2 /usr/lib/libseccomp.so.2
COPY --from=build /imprint /usr/local/bin/imprint
# The agent runs as root (the chart sets runAsUser: 0 and only the
# capabilities it needs); the controller runs as the image's non-root user.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/imprint"]
CMD ["--help"]
