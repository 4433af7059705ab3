"""The risk manager's side: alert model, store, SSE, sinks, the observer, reports, its API and the
dashboard."""
