"""The page cache (memory or Redis) and the bytes its shared entries are made of."""
