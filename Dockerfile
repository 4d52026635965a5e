# bosk in a container: Debian 12, built in one stage, run as a non-root
# user in a slim second stage that has only the runtime libraries.
#
#   docker build -t bosk:0.1.0 .
#   docker run --rm bosk:0.1.0 --version
#   docker run --rm -p 8080:8080 bosk:0.1.0 server --listen 0.0.0.0:8080 \
#       --config /usr/local/share/bosk/boskos-resources.yaml
#
# Kubernetes manifests using this image: config/kubernetes/.

# ---- build: compilers and -dev packages (as scripts/install-deps.sh) ----
FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc make pkg-config \
      liblua5.4-dev lua5.4 lua-cjson-dev \
      libcurl4-openssl-dev libmicrohttpd-dev libyaml-dev libsqlite3-dev \
      libuv1-dev libreadline-dev libcjson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# No .git in the context (.dockerignore): the version comes from VERSION.
RUN make -j"$(nproc)" \
 && make install DESTDIR=/out PREFIX=/usr/local \
 && /out/usr/local/bin/bosk --version

# ---- run: the shared libraries build/bosk needs (ldd) or dlopens ----
FROM debian:12-slim
# libcjson1: linked; libcurl4 (client, janitor), libmicrohttpd12 (server,
# janitor metrics) and libreadline8 (the REPL): loaded on first use;
# ca-certificates for https Boskos URLs. Lua, lua-cjson, libyaml, SQLite
# and libuv are linked statically into bosk.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libreadline8 libcjson1 libcurl4 libmicrohttpd12 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/bosk \
      --create-home --shell /usr/sbin/nologin bosk
COPY --from=build /out/usr/local/ /usr/local/
USER 10001:10001
WORKDIR /var/lib/bosk
# 8080: bosk server; 9090: bosk janitor --metrics-listen.
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/bosk"]
CMD ["--help"]
