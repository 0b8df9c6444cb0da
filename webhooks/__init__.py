"""Outbound webhooks: the one HMAC scheme and the bodies the service sends."""
