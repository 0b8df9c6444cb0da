"""The job record and its Redis store: model, keys, Lua scripts, queues, the webhook outbox and the minter lease."""
