"""Redis: the client and its pool, Sentinel and Cluster construction, and the cache."""
