"""siyu-guard: the enforcement point, an aiohttp proxy in front of WeCom / personal-WeChat APIs."""

__version__ = "0.1.0"
