"""Bytes -> CIDs -> tokens: contracts, IPFS, and the minter."""
