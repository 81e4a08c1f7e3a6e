"""The monitoring ASGI app (/livez /readyz /health /metrics), its server, and mounting an
application beside it."""
