# credbroker's container image. Built by users, not by CI (docs/OPERATIONS.md, "Container"):
#   docker build -t credbroker .
#   docker run -d --name credbroker -p 127.0.0.1:50051:50051 -v credbroker-data:/var/lib/credbroker credbroker
# The API listens on 0.0.0.0:50051 in the container, cleartext unless TLS is
# configured: publish it on the host's loopback as above, or give the daemon
# --tls-cert/--tls-key (CREDBROKER_TLS_CERT/CREDBROKER_TLS_KEY) before
# publishing it further (docs/SECURITY.md, "Listener").

# Build: every dependency, TypeScript compiled to dist/.
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
# --ignore-scripts: "prepare" would build before the sources are copied in.
RUN npm ci --ignore-scripts
COPY src ./src
COPY gen ./gen
RUN npm run build

# Runtime: production dependencies and the compiled daemon, nothing else.
FROM node:24-slim
ENV NODE_ENV=production \
    CREDBROKER_LISTEN=0.0.0.0:50051 \
    CREDBROKER_DATA_DIR=/var/lib/credbroker
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no "prepare" build here (no TypeScript); classic-level
# loads its bundled prebuilt binary (linux x64 and arm64, glibc) without one.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/gen ./dist/gen
COPY LICENSE NOTICE ./
COPY deploy/docker/healthcheck.mjs ./deploy/docker/healthcheck.mjs
# The data dir (database, master.key, admin.token, audit.log) belongs to the
# image's unprivileged "node" user (1000); a named volume inherits that.
RUN mkdir -p /var/lib/credbroker && chown 1000:1000 /var/lib/credbroker && chmod 700 /var/lib/credbroker
VOLUME /var/lib/credbroker
USER 1000:1000
EXPOSE 50051
# grpc.health.v1.Health/Check over the Connect protocol (HTTP/1.1, JSON) on
# the API port: healthy while the daemon answers SERVING.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["serve"]
