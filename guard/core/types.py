"""Shared value types of the guard: what a request asks for, and what the guard decided about it.

Verdicts and decisions are values, never exceptions. A route profile turns a request into an `Action`;
each check of the pipeline returns a `Verdict`; the pipeline folds them into a `Decision`; the proxy
forwards or refuses and hands a `DecisionRecord` to the observers (alerts, reports, audit log).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar, dataclass_transform, get_args

from ratelimit import HitResult
from rules.limits import ACTIONS as LIMIT_NAMES
from rules.ruleset import ScanAction

# `template`: customer-facing text the platform keeps and shows later or to many (a group welcome
# template, a contact way's closing words, a transfer message, a group announcement, a profile signature).
ActionKind = Literal["add_friend", "broadcast", "moment", "message", "welcome", "template"]
ACTION_KINDS: tuple[str, ...] = get_args(ActionKind)
Direction = Literal["active", "passive"]
# The names an Action is counted under (`Action.limit_name`): the limits file's action names
# (`rules.limits.ACTIONS`, the one list) but for a broadcast's recipient count, which is charged beside it.
RECIPIENTS_LIMIT = "broadcast.recipients"
ACTION_NAMES: tuple[str, ...] = tuple(name for name in LIMIT_NAMES if name != RECIPIENTS_LIMIT)
Outcome = Literal["allow", "warn", "refuse"]
# The checks of the pipeline, in order, and `request`: the verdict an account of a many-account request
# gets when another account of it was refused (and the check of `ALLOW`, which decides nothing).
CheckName = Literal["frozen", "content", "attachments", "quota", "request"]
CHECK_NAMES: tuple[str, ...] = get_args(CheckName)
# A detail of a verdict (the limit, the count, the reset time, the refusing rule …): JSON-ready scalars.
Detail = str | int | float | bool | None | tuple[str, ...]
# What happened to the request after the decision.
Disposition = Literal[
    "refused", "forwarded", "upstream_refused", "upstream_timeout", "upstream_error", "checked"
]

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def value_type(cls: type[_T]) -> type[_T]:
    """A value class: frozen to the type checker (mypy strict, run by the test command, rejects any
    assignment to a field), at run time a slots dataclass with the same `__eq__` and `__hash__` as a frozen
    one (`unsafe_hash`: the hash of the fields) but a plain `__init__`. A frozen dataclass sets each field
    through `object.__setattr__`, which made these the dearest objects of a request: measured alone,
    TextField 0.33 -> 0.15 µs, Action and Verdict ~0.9 -> ~0.2; a request makes several of each."""
    return dataclass(slots=True, unsafe_hash=True)(cls)


@value_type
class TextField:
    """One piece of outbound text and where it sat in the request, e.g. `attachments[2].link.title`."""

    where: str
    text: str


@value_type
class Attachment:
    """An outbound attachment: `image`, `link`, `miniprogram`, `video`, `file`, `card` (name card), …"""

    kind: str
    where: str
    url: str | None = None
    appid: str | None = None
    page: str | None = None


@value_type
class Action:
    """What one request asks the messaging platform to do, as the policy sees it."""

    kind: ActionKind
    account: str
    direction: Direction | None = None
    texts: tuple[TextField, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    recipients: int = 0
    request_id: str | None = None
    profile: str = "api"

    @property
    def limit_name(self) -> str:
        """The key of this action in the limits table: `add_friend.active`, `broadcast`, …"""
        if self.kind == "add_friend":
            return f"add_friend.{self.direction or 'active'}"
        return self.kind


@value_type
class ContentMatch:
    """One hit of the content rules in one text field: `start` / `end` index that field's original text."""

    where: str
    category: str
    term: str
    start: int
    end: int
    text: str
    action: ScanAction


@value_type
class Verdict:
    """The answer of one check. `rule` names what decided, e.g. `content:finance`, `quota:broadcast/day`."""

    check: CheckName
    outcome: Outcome
    code: int = 0
    rule: str = ""
    reason_zh: str = ""
    reason_en: str = ""
    # The content check's hits (blocking ones first); empty for every other check.
    matches: tuple[ContentMatch, ...] = ()
    details: Mapping[str, Detail] = field(default_factory=dict)

    @property
    def categories(self) -> list[str]:
        """The content categories this verdict's hits belong to, one per hit."""
        return [m.category for m in self.matches]


ALLOW = Verdict(check="request", outcome="allow")


@value_type
class Decision:
    """The pipeline's result for one Action: every verdict in order, the first refusal wins."""

    action: Action
    verdicts: tuple[Verdict, ...]
    # The ratelimit result of the quota check (None when the pipeline stopped before it or the counters were
    # unavailable); kept so the proxy can refund it and the alerts read the thresholds crossed.
    quota: HitResult | None = None

    @property
    def refusal(self) -> Verdict | None:
        return next((v for v in self.verdicts if v.outcome == "refuse"), None)

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def warnings(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.outcome == "warn")

    @property
    def result(self) -> Literal["refuse", "warn", "allow"]:
        """What the decision says as one word (metrics, audit lines, /v1/check)."""
        return result_of(*read_verdicts(self.verdicts))


def read_verdicts(verdicts: Sequence[Verdict]) -> tuple[Verdict | None, list[Verdict]]:
    """A decision's refusal (the first) and its warnings, in one walk of its verdicts: `Decision.refusal`,
    `.warnings` and `.result` each walk them again whenever they are read, and a decision's bookkeeping
    (metrics, audit line) needs all three."""
    refusal: Verdict | None = None
    warnings: list[Verdict] = []
    for verdict in verdicts:
        outcome = verdict.outcome
        if outcome == "refuse":
            if refusal is None:
                refusal = verdict
        elif outcome == "warn":
            warnings.append(verdict)
    return refusal, warnings


def result_of(refusal: Verdict | None, warnings: Sequence[Verdict]) -> Literal["refuse", "warn", "allow"]:
    """`Decision.result` from what `read_verdicts` read."""
    return "refuse" if refusal is not None else ("warn" if warnings else "allow")


@value_type
class DecisionRecord:
    """A decision and what became of it: the unit the observers (alerts, reports, audit) consume."""

    decision: Decision
    disposition: Disposition
    at: float
    client: str | None = None
    staff: str | None = None
    upstream_status: int | None = None
    dry_run: bool = False


class DecisionObserver(Protocol):
    """Told about every decision and every guard-health event; must never raise into the proxy path."""

    async def on_decision(self, record: DecisionRecord) -> None: ...

    async def on_system(self, event: str, message: str, details: Mapping[str, object]) -> None: ...
