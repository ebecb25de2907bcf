"""replyflow's domain: decisions over plain values, and the store.

``core`` imports no Flask, RQ, Redis, httpx or platform SDK (``tests/test_architecture.py``).
"""
