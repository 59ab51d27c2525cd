"""The data tier: PostgreSQL, Redis and Chroma, with the configs and tools their pods run."""
