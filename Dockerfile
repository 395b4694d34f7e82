# Two stages: build the release binary, then run it on a slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin autoglue

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/autoglue autoglue \
 && install -d -o autoglue -g autoglue /var/lib/autoglue
COPY --from=build /src/target/release/autoglue /usr/local/bin/autoglue
USER autoglue
# Without DATABASE_URL the embedded SQLite file lands here.
WORKDIR /var/lib/autoglue
ENV AUTOGLUE_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["autoglue"]
CMD ["serve"]
