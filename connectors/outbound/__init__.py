"""Outbound, signed webhooks: how a flow tells any other system that something happened."""
