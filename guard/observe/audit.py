"""Structured logs: structlog JSON lines, and one audit line per decision.

Personal data never reaches a log line: message text is not logged (only which field matched which
category and term of the dictionary), customer ids are counted, not listed, and any free text that must
appear (an error detail, a matched excerpt) goes through `mask()` first, which hides phone numbers,
WeChat ids and all but the edges of the text.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from guard.core.types import DecisionRecord
from guard.observe.masking import mask


def configure_logging(level: str = "info") -> None:
    """JSON lines on stderr for the guard's own logs, the audit lines and stdlib loggers alike."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # WriteLogger: the same bytes as PrintLogger (the line and "\n", flushed: one write) without
        # print()'s own work, 13.9 → 5.4 µs a line measured alone on the development machine.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(ensure_ascii=False),
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def audit_fields(record: DecisionRecord) -> dict[str, Any]:
    """The audit line of one decision: what was asked, what was decided, what happened — no content."""
    decision = record.decision
    action = decision.action
    # `Decision.refusal`, `.warnings` and `.result` each walk the verdicts again: read them once here.
    refusal = decision.refusal
    warnings = decision.warnings
    result = "refuse" if refusal is not None else ("warn" if warnings else "allow")
    fields: dict[str, Any] = {
        "kind": action.kind,
        "action": action.limit_name,
        "account": action.account,
        "profile": action.profile,
        "recipients": action.recipients,
        "texts": len(action.texts),
        "text_chars": sum(len(t.text) for t in action.texts),
        "attachments": [att.kind for att in action.attachments],
        "decision": result,
        "disposition": record.disposition,
        "client": record.client,
        "staff": record.staff,
        "dry_run": record.dry_run,
    }
    if action.request_id:
        fields["request_id"] = mask(action.request_id, 2)
    if refusal is not None:
        fields["code"] = refusal.code
        fields["rule"] = refusal.rule
    if warnings:
        fields["warnings"] = [v.rule for v in warnings]
    matches = [
        {"where": m.where, "category": m.category, "term": m.term}
        for verdict in decision.verdicts
        for m in verdict.matches
    ]
    if matches:
        fields["matches"] = matches
    if record.upstream_status is not None:
        fields["upstream_status"] = record.upstream_status
    return fields


class AuditLog:
    def __init__(self) -> None:
        self.log = structlog.get_logger("guard.audit")

    def decision(self, record: DecisionRecord) -> None:
        self.log.info("decision", **audit_fields(record))

    def event(self, event: str, **fields: Any) -> None:
        self.log.info(event, **fields)
