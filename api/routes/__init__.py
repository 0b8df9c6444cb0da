"""HTTP routes, one module per resource; each exports its `HANDLERS` in the order the OpenAPI document lists them."""

from __future__ import annotations

from api.routes import ipfs, mints, ops, previews, siwe, webhooks

# The order is the OpenAPI document's path order.
ROUTE_HANDLERS = (
    *mints.HANDLERS,
    *previews.HANDLERS,
    *siwe.HANDLERS,
    *webhooks.HANDLERS,
    *ipfs.HANDLERS,
    *ops.HANDLERS,
)
BENCH_HANDLERS = ops.BENCH_HANDLERS
BENCH_PATH = ops.BENCH_PATH
