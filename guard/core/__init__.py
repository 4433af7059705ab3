"""The guard's core: what a request asks for and what the guard decides about it. No aiohttp here."""
