# syntax=docker/dockerfile:1
# One image for both the API and the worker (the command picks which); multi-stage so the runtime
# image holds only compiled JavaScript and production dependencies.
#
# Node: 24 LTS ("Krypton", supported to 2028-04-30). Node 20 reached end of life on 2026-04-30.
# Node 26 became the Active LTS in late October 2026; move to it with `--build-arg NODE_MAJOR=26`
# once the image passes its checks on it.
ARG NODE_MAJOR=24

FROM node:${NODE_MAJOR}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:${NODE_MAJOR}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev

FROM node:${NODE_MAJOR}-bookworm-slim AS runtime
ENV NODE_ENV=production
# The metrics listener is for the scraper on the container network (never publish it); API_HOST is set per service.
ENV API_METRICS_HOST=0.0.0.0
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY package.json ./
COPY config ./config
USER node
# 3000: the API; 3002: its /metrics listener (API_METRICS_PORT), for the internal network only.
EXPOSE 3000 3002
# The worker uses the same image with `command: ["node", "dist/workers/worker.js"]`.
CMD ["node", "dist/api/server.js"]
