"""Content addressing: CIDs as `ipfs add --cid-version=1` computes them, the local store, the pinning clients."""
