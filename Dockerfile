# One image for shopfloor's own services (simulate, edge, gateway, server).
FROM python:3.11-slim-bookworm
RUN useradd --system --create-home --home-dir /var/lib/shopfloor shopfloor
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shopfloor shopfloor
COPY edge edge
COPY gateway gateway
COPY server server
COPY simulators simulators
RUN pip install --no-cache-dir . && rm -rf /src
USER shopfloor
WORKDIR /var/lib/shopfloor
ENTRYPOINT ["shopfloor"]
CMD ["--help"]
