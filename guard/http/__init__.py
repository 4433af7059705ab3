"""The request path, top to bottom: app keys, auth, responses, body reading, proxy and the /v1 API."""
