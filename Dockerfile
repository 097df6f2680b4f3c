# rotor's container image: a static binary, a non-root user, no shell.
# `make image` builds the same image without a daemon (cmd/rotor-image);
# internal/image's tests check that this file and that build agree on
# the user, the entrypoint, the command and the port.
#
#   docker build -t rotor .
#   docker run --rm rotor --version

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/rotorhq/rotor/internal/cli.Version=${VERSION}" -o /out/rotor ./cmd/rotor \
 && mkdir -p /out/etc /out/var/lib/rotor /out/tmp \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:rotor:/var/lib/rotor:/sbin/nologin\n' > /out/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /out/etc/group \
 && chmod 1777 /out/tmp && chown 65532:65532 /out/var/lib/rotor && chmod 700 /out/var/lib/rotor

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build /out/tmp /tmp
COPY --from=build /out/var/lib/rotor /var/lib/rotor
COPY --from=build /out/rotor /rotor
ENV ROTOR_CONFIG=/etc/rotor/rotor.yaml PATH=/
WORKDIR /var/lib/rotor
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/rotor"]
CMD ["serve", "--listen", "0.0.0.0:8443", "--tls-cert", "/etc/rotor/tls/tls.crt", "--tls-key", "/etc/rotor/tls/tls.key"]
