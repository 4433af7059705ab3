"""The guard as a WeCom API client of its own: WeCom's native chat intercept rules (plan, sync)."""
