# privledger image for the scale-out deployment (docker-compose.yml): the deployer and the
# organisation nodes. Build from the repository root: docker build -t privledger:dev .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PRIVLEDGER_PROJECT_ROOT=/app

# Node.js runs the pinned npm solc-js compiler through chain/bin/solc for `privledger compile`.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*

# The pinned npm toolchain (solc-js, OpenZeppelin) from the lockfile. anvil's platform binaries
# (optional dependencies) and its install script are skipped: the scale-out chain is Besu.
WORKDIR /app/chain
COPY chain/package.json chain/package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=optional --ignore-scripts \
    && touch node_modules/.installed

# Python dependencies exactly as locked in uv.lock (hash-checked), uv itself pinned by hash.
# The postgres extra brings psycopg, the driver behind PRIVLEDGER_DATABASE_URL=postgresql+psycopg://...
WORKDIR /app
COPY uv-bootstrap.txt ./
RUN pip install --require-hashes --no-deps -r uv-bootstrap.txt
ENV UV_PROJECT_ENVIRONMENT=/usr/local UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --extra postgres --no-install-project --inexact
COPY src ./src
RUN uv sync --frozen --extra postgres --no-editable --inexact

COPY contracts ./contracts
COPY chain ./chain
COPY benchmarks ./benchmarks

RUN useradd --system --create-home --uid 10001 privledger \
    && mkdir -p build var chain/deployments \
    && chown privledger:privledger build var chain/deployments
USER 10001

CMD ["privledger", "--help"]
