"""The developer stack: local redis-server and anvil, seeded demo wallets, sample contracts, the demo."""
