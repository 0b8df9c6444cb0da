"""Background processes, one module and composition root each: pipeline worker, minter, deliverer, reconciler."""
