# Persona Mint service image: the same steps as `make install`, CPU torch by default.
# Build: docker build -t persona-mint .   Run: docker run -p 8000:8000 persona-mint serve
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PERSONAMINT_HOST=0.0.0.0 PERSONAMINT_DATA_DIR=/data

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server nodejs npm make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first so code edits do not reinstall them.
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --loglevel=error
COPY pyproject.toml constraints.txt README.md ./
COPY api ./api
COPY personalization ./personalization
COPY render ./render
COPY chain ./chain
COPY jobs ./jobs
COPY pipeline ./pipeline
COPY processes ./processes
COPY ipfs ./ipfs
COPY webhooks ./webhooks
COPY config ./config
COPY observability ./observability
COPY devstack ./devstack
COPY cli ./cli
COPY collections ./collections
# torch comes from PyTorch's CPU index here; GPU images swap the index URL for a CUDA one.
RUN python -m venv /app/.venv \
 && /app/.venv/bin/pip install -q --upgrade pip wheel setuptools \
 && /app/.venv/bin/pip install -q --extra-index-url https://download.pytorch.org/whl/cpu \
      -c constraints.txt -e '.[gpu]'

VOLUME /data
EXPOSE 8000
ENTRYPOINT ["/app/.venv/bin/personamint"]
CMD ["serve"]
