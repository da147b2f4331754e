# A minimal image for the service. Not built on the machines Loom is developed on (they
# have no Docker engine), so treat it as a starting point. CMD runs node itself, so the
# container runtime's SIGTERM reaches the service and shuts it down gracefully.
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# better-sqlite3 compiles here (python3, make and g++ are in this image); prepare builds dist/
RUN npm install --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production LOOM_HOST=0.0.0.0 LOOM_PORT=8080 LOOM_DATA_DIR=/data
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node /data
VOLUME /data
EXPOSE 8080
USER node
CMD ["node", "dist/main.js"]
