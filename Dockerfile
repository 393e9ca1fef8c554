# amp-relay in a container. Not built or run on the machine this project is tested on (no Docker
# daemon there); test/integration/deploy.test.ts checks what can be checked without one.
#   docker build -t amp-relay .
#   docker run -d --name amp-relay -p 23000:23000 -v amp-relay-data:/data amp-relay

# Build stage: the TypeScript compiler and esbuild (the admin console's bundler) are dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci
COPY proto ./proto
COPY src ./src
COPY scripts/build-console.mjs ./scripts/
RUN npx tsc -p tsconfig.json && node scripts/build-console.mjs

# Runtime stage: production dependencies, the compiled code and the built console (dist/console).
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    AMP_HOST=0.0.0.0 \
    AMP_PORT=23000 \
    AMP_DATA_DIR=/data
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY scripts ./scripts
# The data volume belongs to the unprivileged `node` user (uid 1000) of the base image.
RUN mkdir -p /data && chown node:node /data && chmod 0700 /data
USER node
VOLUME /data
EXPOSE 23000
# No curl in the slim image: node's fetch asks for readiness (503 while writes fail or on shutdown).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.AMP_PORT||23000)+'/api/v1/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/amp-relay.js"]
CMD ["serve"]
