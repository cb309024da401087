"""The category taxonomy a rule pack may use, and the actions a category may recommend.

Category names are a closed list so that dashboards, vendors' labels and regulators' reporting
lines can be mapped one to one. The list follows the content-safety labels common to moderation
vendors (Alibaba Cloud / Tencent Cloud text moderation: politics, porn, abuse, fraud, gambling,
contraband, terrorism, minors, ad; OpenAI/Azure: harassment, hate, self-harm, sexual, violence)
and the Chinese CAC / EU DSA statement-of-reasons categories:

==============  ==========================================  =================================
name            what it covers                              accepted synonym (kept as written)
==============  ==========================================  =================================
politics        political content a room must not carry
sexual          sexual content, solicitation
abuse           insults and harassment of a person          harassment
hate            attacks on a group (ethnicity, religion...)
fraud           scams, phishing, payment fraud              scam
gambling        promoting or running gambling
drugs           selling or promoting illegal drugs
violence        threats of violence, terrorism              terrorism
minors          content endangering children
ads             spam, unsolicited promotion                 spam
self_harm       suicide and self-harm
==============  ==========================================  =================================

plus ``custom.<name>`` (``<name>``: lowercase letters, digits, ``_``) for anything an operator
needs outside the list. A synonym is accepted as the category's name as written (``spam`` stays
``spam`` in alerts, so existing rule ids keep their meaning); :data:`CANONICAL` maps it to its
taxonomy name for reporting. ``hate`` is listed separately from ``abuse`` because vendors and the
DSA both report it separately.

Actions are what a category recommends to the people running a room (the product never acts on
its own): ``operator_alert`` (notify the moderation desk), ``host_warning`` (tell the room's host),
``recommend_mute``, ``recommend_remove`` (the speaker from the room), ``recommend_close_room``.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Literal, get_args

__all__ = ["ACTIONS", "CANONICAL", "CATEGORIES", "DEFAULT_ACTIONS", "Action",
           "category_problem"]

Action = Literal["operator_alert", "host_warning", "recommend_mute", "recommend_remove",
                 "recommend_close_room"]
ACTIONS: tuple[str, ...] = get_args(Action)
DEFAULT_ACTIONS: tuple[Action, ...] = ("operator_alert",)
"""A category that lists no ``actions`` only alerts the moderation desk."""

CATEGORIES: tuple[str, ...] = ("politics", "sexual", "abuse", "hate", "fraud", "gambling",
                               "drugs", "violence", "minors", "ads", "self_harm")
_SYNONYMS = {"harassment": "abuse", "scam": "fraud", "terrorism": "violence", "spam": "ads"}
CANONICAL = MappingProxyType({**{c: c for c in CATEGORIES}, **_SYNONYMS})
"""Every accepted plain category name -> its taxonomy name."""

_CUSTOM = re.compile(r"custom\.[a-z][a-z0-9_]*\Z")


def category_problem(name: str) -> str | None:
    """Why ``name`` is not an accepted category name, or ``None`` if it is."""
    if name in CANONICAL or _CUSTOM.match(name):
        return None
    if name.startswith("custom."):
        return (f"bad custom category name {name!r} (custom.<name>, <name> in lowercase "
                "letters, digits and _, starting with a letter)")
    return (f"unknown category {name!r} (expected one of {', '.join(CANONICAL)}, "
            "or custom.<name>)")
