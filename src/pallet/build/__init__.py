"""Dockerfile builds: the parser (`dockerfile`, `shell`), the context and .dockerignore
(`context`, `dockerignore`), the steps on snapshots (`executor`), the layer cache (`cache`)
and the builder that ties them together (`builder`). Used by palletd's `POST /build`."""
