"""Apply a plan to the corp's chat intercept rules: only the rules the guard owns (by name) are read in
detail, created, updated or deleted; nothing is written when nothing changed."""

from __future__ import annotations

from typing import Any

from guard.wecom.client import WeComClient, WeComError
from guard.wecom.intercept import CORP_RULE_LIMIT, Existing, Plan, diff, owned_name


def _error(name: str, exc: WeComError) -> dict[str, object]:
    return {"rule_name": name, "call": exc.call, "errcode": exc.errcode, "errmsg": exc.errmsg}


async def sync_plan(client: WeComClient, plan: Plan, *, dry_run: bool = False) -> dict[str, Any]:
    """Make the owned rules equal the plan. Raises WeComError when the corp's rules cannot be read (then
    nothing was written); a failed write is reported under `errors` and the others go on."""
    listed = await client.list_rules()
    mine = owned_name(plan.config.prefix)
    owned_ids = [(str(r.get("rule_id", "")), str(r.get("rule_name", ""))) for r in listed]
    hand_made = [name for _, name in owned_ids if not mine.match(name)]
    owned: list[Existing] = []
    for rule_id, name in owned_ids:
        if mine.match(name):
            detail = await client.get_rule(rule_id)
            detail.setdefault("rule_id", rule_id)
            detail.setdefault("rule_name", name)
            owned.append(Existing.from_json(detail))
    change = diff(plan.rules, owned)
    report: dict[str, Any] = {
        "created": [],
        "updated": [],
        "deleted": [],
        "unchanged": list(change.unchanged),
        "errors": [],
        "hand_made": len(hand_made),
        "dry_run": dry_run,
    }
    if dry_run:
        report["created"] = [b["rule_name"] for b in change.create]
        report["updated"] = [b["rule_name"] for b in change.update]
        report["deleted"] = [r.rule_name for r in change.delete]
        return report
    for rule in change.delete:  # first, to free room under the corp's limit
        try:
            await client.delete_rule(rule.rule_id)
            report["deleted"].append(rule.rule_name)
        except WeComError as exc:
            report["errors"].append(_error(rule.rule_name, exc))
    for body in change.update:
        try:
            await client.update_rule(body)
            report["updated"].append(body["rule_name"])
        except WeComError as exc:
            report["errors"].append(_error(body["rule_name"], exc))
    count = len(listed) - len(report["deleted"])
    for body in change.create:
        if count >= CORP_RULE_LIMIT:
            report["errors"].append(
                {
                    "rule_name": body["rule_name"],
                    "call": "add_intercept_rule",
                    "errcode": None,
                    "errmsg": f"not sent: the corp already has {count} rules, WeCom allows "
                    f"{CORP_RULE_LIMIT} ({len(hand_made)} made by hand); lower max_rules or remove some",
                }
            )
            continue
        try:
            await client.add_rule(body)
            report["created"].append(body["rule_name"])
            count += 1
        except WeComError as exc:
            report["errors"].append(_error(body["rule_name"], exc))
    return report
