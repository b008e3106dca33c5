# privledger image for the scale-out deployment (docker-compose.yml): the deployer and the
# organisation nodes. Build from the repository root: docker build -t privledger:dev .
# Everything installed comes from a lock: Python packages from uv.lock (hash-checked), the npm
# toolchain from chain/package-lock.json, Node.js from the official Node.js image of a supported
# LTS line (Debian bookworm's nodejs is 18, past its end of life). Pin NODE_IMAGE to a digest
# (node:22-bookworm-slim@sha256:...) for builds that must come out byte for byte the same.
ARG NODE_IMAGE=node:22-bookworm-slim

# The pinned npm toolchain (solc-js, OpenZeppelin) from the lockfile. anvil's platform binaries
# (optional dependencies) and its install script are skipped: the scale-out chain is Besu.
FROM ${NODE_IMAGE} AS chain-tools
WORKDIR /app/chain
COPY chain/package.json chain/package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=optional --ignore-scripts \
    && touch node_modules/.installed

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PRIVLEDGER_PROJECT_ROOT=/app

# Node.js (the binary alone: nothing at run time needs npm) runs the pinned solc-js compiler
# through chain/bin/solc for `privledger compile`.
COPY --from=chain-tools /usr/local/bin/node /usr/local/bin/node
COPY --from=chain-tools /app/chain/node_modules /app/chain/node_modules

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
COPY deploy ./deploy

# The contracts compiled into the image (build/contracts, cached by source hash): the deployer's
# `privledger compile` finds them, and every container runs the same bytecode. The image runs as
# an unprivileged user, owning only what it writes: var/ (node homes) and the deployment record.
RUN privledger compile \
    && useradd --system --create-home --uid 10001 privledger \
    && mkdir -p var chain/deployments \
    && chown privledger:privledger var chain/deployments
USER 10001

CMD ["privledger", "--help"]
