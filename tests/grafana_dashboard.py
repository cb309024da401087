"""What the Grafana dashboard tests share: the dashboard's panels and queries, and the metrics
RoomWarden really exports (collected by instantiating the project's metric objects, one fresh
registry per kind of process, never from a hand-written list).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "roomwarden.json"

# Series Prometheus itself adds to every target (not exported by RoomWarden).
PROMETHEUS_SERIES = frozenset({"up"})

# Sample suffixes of each metric type, as prometheus_client exposes them.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}
# Series that only make sense under rate()/increase(): they only ever go up.
_MONOTONIC = ("_total", "_bucket", "_sum", "_count")


@dataclass(frozen=True, slots=True)
class ExportedMetric:
    """One metric family a RoomWarden process exports."""

    family: str  # e.g. roomwarden_alerts (counter), roomwarden_alert_latency_seconds
    type: str
    labelnames: tuple[str, ...]

    @property
    def series(self) -> tuple[str, ...]:
        """The names its samples carry on /metrics."""
        return tuple(self.family + s for s in _SUFFIXES[self.type])

    @property
    def monotonic_series(self) -> tuple[str, ...]:
        if self.type not in ("counter", "histogram", "summary"):
            return ()
        return tuple(s for s in self.series if s.endswith(_MONOTONIC))


def process_registries() -> dict[str, CollectorRegistry]:
    """A fresh registry per kind of RoomWarden process, holding every metric it creates."""
    from policy.engine import PolicyEngine
    from policy.rules import RulePack, default_pack_path
    from roomwarden.console_metrics import ConsoleMetrics
    from roomwarden.handoff import SegmentHandoff
    from roomwarden.metrics import Metrics
    from roomwarden.policy_reload import PolicyReloader
    from roomwarden.webhook_metrics import WebhookMetrics
    from roomwarden.worker_asr import asr_worker_metrics
    from roomwarden.worker_audit import audit_worker_metrics
    from roomwarden.worker_policy import policy_worker_metrics

    engine = PolicyEngine(RulePack.load(default_pack_path()), windows=None)

    def reloader(metrics: Metrics) -> None:  # serve and the policy worker, when policy.rules set
        PolicyReloader(default_pack_path(), lambda _engine: None, lambda _path: engine,
                       active=engine, registry=metrics.registry, sighup=False)

    serve = Metrics(CollectorRegistry())
    SegmentHandoff(sink=None, metrics=serve, source="/roomwarden/dashboard-test",  # type: ignore[arg-type]
                   segments_topic="segments", gaps_topic="gaps")
    reloader(serve)
    asr = asr_worker_metrics()
    policy = policy_worker_metrics()
    reloader(policy.base)
    for escalating in (serve, policy.base):  # host warnings: serve local, worker policy else
        WebhookMetrics(escalating.registry)
    audit, _ = audit_worker_metrics()
    return {"serve": serve.registry, "asr-worker": asr.base.registry,
            "policy-worker": policy.base.registry, "audit-worker": audit.base.registry,
            "console": ConsoleMetrics().registry}


def metric_objects(registry: CollectorRegistry) -> list[MetricWrapperBase]:
    """The metric objects registered on ``registry`` (prometheus_client has no public list)."""
    return [c for c in list(registry._collector_to_names)  # noqa: SLF001
            if isinstance(c, MetricWrapperBase)]


def exported_metrics() -> dict[str, ExportedMetric]:
    """Every metric family any RoomWarden process exports, by family name."""
    out: dict[str, ExportedMetric] = {}
    for registry in process_registries().values():
        # Label names are not public either; Info metrics carry their values as labels, seen
        # only on samples.
        for collector in metric_objects(registry):
            labelnames = set(collector._labelnames)  # noqa: SLF001
            for family in collector.collect():
                labelnames.update(k for sample in family.samples for k in sample.labels
                                  if k != "le")
            for family in collector.describe():
                out[family.name] = ExportedMetric(family.name, family.type,
                                                  tuple(sorted(labelnames)))
    return out


def exported_series() -> dict[str, ExportedMetric]:
    """Every series name on any RoomWarden /metrics, to the family it belongs to."""
    return {s: m for m in exported_metrics().values() for s in m.series}


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and panels inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            inner = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
            assert inner, f"variable {var['name']}: expected label_values(<selector>, label)"
            yield f"variable {var['name']}", inner.group(1)


# --- PromQL, as far as the tests need it ---------------------------------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?")
# Reserved words; aggregators among them may be followed by "by (...)" rather than "(".
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                       "and", "or", "unless", "offset", "inf", "nan", "atan2", "sum", "min",
                       "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                       "bottomk", "topk", "quantile", "limitk", "limit_ratio"})


def _strip(expr: str) -> str:
    expr = _STRING.sub('""', expr)
    expr = _MATCHERS.sub("", expr)
    return _RANGE.sub("", expr)


def metric_names(expr: str) -> list[str]:
    """The metric names an expression selects (functions, keywords, labels left out)."""
    bare = _LABEL_LIST.sub(r"\1", _strip(expr))
    return [m.group(1) for m in _IDENT.finditer(bare)
            if not m.group(2) and m.group(1).lower() not in _KEYWORDS]


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by/without/on/ignoring/group_* clauses."""
    return {label.strip() for _, labels in _LABEL_LIST.findall(_strip(expr))
            for label in labels.split(",") if label.strip()}


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, its label matchers text) for every selector naming a metric."""
    return [(m.group(1), m.group(2))
            for m in re.finditer(r"(?<![\w:])([A-Za-z_:][\w:]*)\{([^{}]*)\}", expr)]


def counted_arguments(expr: str) -> list[str]:
    """Metric names directly inside rate(), irate() or increase()."""
    return re.findall(r"\b(?:rate|irate|increase)\(\s*([A-Za-z_:][\w:]*)", expr)


def quantile_groupings(expr: str) -> list[str]:
    """The grouping clause of every histogram_quantile(q, sum by (...) (...))."""
    return re.findall(r"histogram_quantile\(\s*[\d.]+\s*,\s*sum\s+by\s*\(([^()]*)\)", expr)
