"""Reading YAML nodes with their line numbers, for :mod:`policy.rules`.

The pack parser walks ``yaml.compose`` nodes rather than loaded Python values so every value keeps
the line it was written on; these helpers turn a node of the wrong shape into an error naming
that line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

__all__ = ["NodeReader"]


class NodeReader:
    """Node accessors that raise ``error_type(path, line, message)`` on a wrong shape."""

    def __init__(self, path: Path, error_type: Callable[[Path, int | None, str], Exception]
                 ) -> None:
        self.path = path
        self._error_type = error_type

    def error(self, node_or_line: yaml.Node | int | None, message: str) -> Exception:
        if isinstance(node_or_line, yaml.Node):
            line: int | None = node_or_line.start_mark.line + 1
        else:
            line = node_or_line
        return self._error_type(self.path, line, message)

    # -- node helpers --------------------------------------------------------------------------

    def mapping(self, node: yaml.Node, what: str,
                allowed: tuple[str, ...] | None) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping node as ``key -> (key node, value node)``; rejects duplicate keys and, when
        ``allowed`` is given, unknown ones."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping, not {_kind(node)}")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error(key_node, f"keys of {what} must be strings")
            key = key_node.value
            if key in out:
                raise self.error(key_node, f"duplicate key {key!r} in {what}")
            if allowed is not None and key not in allowed:
                raise self.error(key_node, f"unknown key {key!r} in {what} (expected "
                                           f"{', '.join(allowed)})")
            out[key] = (key_node, value_node)
        return out

    def sequence(self, node: yaml.Node, what: str) -> yaml.SequenceNode:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what} must be a list")
        return node

    def required(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], node: yaml.Node,
                 key: str, what: str) -> yaml.Node:
        if key not in fields:
            raise self.error(node, f"{what} is missing {key!r}")
        return fields[key][1]

    def string(self, node: yaml.Node, what: str) -> str:
        """A scalar's text as written (so ``version: 1.10`` stays ``"1.10"``); null -> ``""``."""
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, f"{what} must be a string, not {_kind(node)}")
        if node.tag == "tag:yaml.org,2002:null" and node.style is None:
            return ""
        return str(node.value)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}"
