# Portico container image.
#
#   docker build -t portico .
#   docker run -e PORTICO_SECRET=change-me -p 8080:8080 -p 9090:9090 -v $PWD/portico.yaml:/etc/portico/portico.yaml portico
#
# The image runs as an unprivileged user (uid 65532) and reads its
# configuration from /etc/portico/portico.yaml (mount yours there, or pass
# --config). Ports: the WebSocket listener of each API (8080 in the
# examples) and the management listener (9090). Inside a container the
# management address must not be loopback-only to be reachable from other
# containers: set management.address to 0.0.0.0:9090, which needs
# management.auth: iam (signed @connections calls; see the README's
# "Management authentication (IAM)"). The built-in example reads its
# secret from PORTICO_SECRET.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The exact build command CI checks (see .ci/run).
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/portico ./cmd/portico

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/portico /usr/local/bin/portico
COPY examples/docker/portico.yaml /etc/portico/portico.yaml
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/portico"]
CMD ["--config", "/etc/portico/portico.yaml"]
