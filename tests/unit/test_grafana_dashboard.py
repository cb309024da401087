"""deploy/grafana: the dashboard only queries metrics RoomWarden really exports, shows every one
of them, and the compose stack mounts and scrapes what the dashboard needs.

The exported metrics come from instantiating the project's own metric objects
(tests/grafana_dashboard.py), so renaming a metric without updating the dashboard fails here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from alerts.console.settings import ConsoleSettings
from roomwarden.settings import (
    AsrWorkerSettings,
    AuditWorkerSettings,
    HttpSettings,
    KafkaSettings,
    PolicyWorkerSettings,
)
from tests.grafana_dashboard import (
    DASHBOARD,
    DEPLOY,
    PROMETHEUS_SERIES,
    counted_arguments,
    exported_metrics,
    exported_series,
    grouping_labels,
    load_dashboard,
    metric_names,
    panels,
    quantile_groupings,
    queries,
    selectors,
)

COMPOSE = DEPLOY / "compose.yaml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
PROVISIONING = DEPLOY / "grafana" / "provisioning"

ROWS = ["Overview", "Ingest", "ASR", "Policy", "Kafka", "Workers", "Host webhooks", "Audit",
        "Console"]
# Labels every series has once scraped, or that histogram_quantile consumes.
SCRAPE_LABELS = frozenset({"job", "instance", "le"})
# The /metrics port of each RoomWarden command a compose service may run (settings defaults).
METRICS_PORTS = {
    ("serve",): HttpSettings().port,
    ("worker", "asr"): AsrWorkerSettings().metrics_port,
    ("worker", "policy"): PolicyWorkerSettings().metrics_port,
    ("worker", "audit"): AuditWorkerSettings().metrics_port,
    ("console",): ConsoleSettings().port,
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def yaml_file(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def legend_labels(legend: str) -> set[str]:
    return set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))


# --- the dashboard itself -----------------------------------------------------------------

def test_dashboard_is_grafana_json_with_datasource_and_filters(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"] == "RoomWarden"
    assert dashboard["schemaVersion"] >= 39  # Grafana 10.4 / 11
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["includeAll"] and variables[name]["multi"]
    assert "$job" in json.dumps(variables["instance"]["query"])  # instance follows job


def test_rows_in_order(dashboard: dict[str, Any]) -> None:
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[:len(ROWS)] == ROWS


def test_panel_ids_and_titles_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    titles = [p["title"] for p in panels(dashboard)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert all(titles), "a panel without a title"
    assert len(titles) == len(set(titles)), sorted({t for t in titles if titles.count(t) > 1})


def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, \
            panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_every_query_goes_to_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    ds = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for panel in panels(dashboard):
        if panel["type"] in ("row", "text"):
            continue
        assert panel["datasource"] == ds, panel["title"]
        assert panel["targets"], f"{panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == ds, panel["title"]
            assert target["expr"].strip(), panel["title"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == ds, var["name"]


# --- the dashboard against what the project exports ----------------------------------------

def test_every_metric_queried_is_exported() -> None:
    real = set(exported_series()) | PROMETHEUS_SERIES
    unknown = {where: sorted(set(metric_names(expr)) - real)
               for where, expr in queries(load_dashboard())}
    unknown = {where: names for where, names in unknown.items() if names}
    assert not unknown, f"metrics no RoomWarden process exports: {unknown}"


def test_every_exported_metric_is_on_the_dashboard(dashboard: dict[str, Any]) -> None:
    used = {name for _, expr in queries(dashboard) for name in metric_names(expr)}
    missing = sorted(m.family for m in exported_metrics().values()
                     if not used & set(m.series))
    assert not missing, f"exported but on no panel: {missing}"


def test_every_selector_filters_by_job_and_instance(dashboard: dict[str, Any]) -> None:
    for where, expr in queries(dashboard):
        if where.startswith("variable"):
            continue
        names = metric_names(expr)
        selected = selectors(expr)
        assert [name for name, _ in selected] == names, f"{where}: a metric without matchers"
        for name, matchers in selected:
            assert 'job=~"$job"' in matchers and 'instance=~"$instance"' in matchers, \
                f"{where}: {name}{{{matchers}}}"


def test_rate_and_increase_only_over_counters_and_histograms(dashboard: dict[str, Any]) -> None:
    monotonic = {s for m in exported_metrics().values() for s in m.monotonic_series}
    for where, expr in queries(dashboard):
        for name in counted_arguments(expr):
            assert name in monotonic, f"{where}: rate/increase over {name}, not a counter"
        for name in metric_names(expr):
            if name.endswith("_bucket"):
                assert "histogram_quantile" in expr or "heatmap" in where.lower() or \
                    "increase(" in expr, f"{where}: raw bucket series"


def test_quantiles_keep_the_le_label(dashboard: dict[str, Any]) -> None:
    for where, expr in queries(dashboard):
        if "histogram_quantile" in expr:
            groupings = quantile_groupings(expr)
            assert groupings, f"{where}: histogram_quantile without sum by (le, ...)"
            for group in groupings:
                assert "le" in {g.strip() for g in group.split(",")}, where


def test_grouping_and_legend_labels_exist_on_the_metrics(dashboard: dict[str, Any]) -> None:
    by_series = exported_series()
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target["expr"]
            available = set(SCRAPE_LABELS)
            for name in metric_names(expr):
                if name in by_series:
                    available.update(by_series[name].labelnames)
            where = f"{panel['title']!r} {target['refId']}"
            assert grouping_labels(expr) <= available, \
                f"{where}: groups by {grouping_labels(expr) - available}"
            assert legend_labels(target.get("legendFormat", "")) <= available, \
                f"{where}: legend names {legend_labels(target['legendFormat']) - available}"


# --- provisioning, compose and Prometheus ----------------------------------------------------

def mounts(service: dict[str, Any]) -> dict[PurePosixPath, Path]:
    """Container path -> host path of a service's bind mounts (relative to deploy/)."""
    out: dict[PurePosixPath, Path] = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        if host.startswith("."):
            out[PurePosixPath(container)] = (DEPLOY / host).resolve()
    return out


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where a path inside the container comes from on the host, through the bind mounts."""
    path = PurePosixPath(container_path)
    for container, host in mounts(service).items():
        if path == container or container in path.parents:
            return host / path.relative_to(container)
    raise AssertionError(f"{container_path} is not mounted from the repository")


def test_compose_grafana_service(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    image, _, tag = grafana["image"].partition(":")
    assert image == "grafana/grafana-oss" and tag and tag != "latest"
    assert "prometheus" in grafana["depends_on"]
    assert "3000:3000" in grafana["ports"]
    for host in mounts(grafana).values():
        assert host.exists(), f"mounted but missing: {host}"
    assert host_path(grafana, "/etc/grafana/provisioning/datasources") == \
        PROVISIONING / "datasources"
    assert host_path(grafana, "/etc/grafana/provisioning/dashboards") == \
        PROVISIONING / "dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(grafana, home) == DASHBOARD
    # No default credentials shipped: the admin password must be given.
    assert ":?" in grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]


def test_dashboard_provider_reads_the_mounted_dashboards(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    providers = yaml_file(PROVISIONING / "dashboards" / "roomwarden.yaml")["providers"]
    assert [p["type"] for p in providers] == ["file"]
    folder = host_path(grafana, providers[0]["options"]["path"])
    assert DASHBOARD in folder.glob("*.json")


def test_datasource_points_at_the_compose_prometheus(compose: dict[str, Any]) -> None:
    (source,) = yaml_file(PROVISIONING / "datasources" / "prometheus.yaml")["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"]
    url = re.fullmatch(r"http://([\w-]+):(\d+)/?", source["url"])
    assert url, source["url"]
    prometheus = compose["services"][url.group(1)]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert any(p.endswith(f":{url.group(2)}") for p in prometheus["ports"])
    mounted = host_path(prometheus, "/etc/prometheus/prometheus.yml")
    assert mounted == PROMETHEUS
    # $__rate_interval is only right when Grafana knows the scrape interval.
    assert source["jsonData"]["timeInterval"] == \
        yaml_file(PROMETHEUS)["global"]["scrape_interval"]


def roomwarden_services(compose: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Compose services running the RoomWarden image, with the command each runs."""
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    default = json.loads(re.search(r"^CMD (.*)$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    return {name: tuple(service.get("command", default))
            for name, service in compose["services"].items()
            if service.get("build", {}).get("dockerfile") == "deploy/Dockerfile"}


def scrape_targets() -> dict[str, set[tuple[str, int]]]:
    """job -> (host, port) targets, static or resolved by DNS service discovery."""
    out: dict[str, set[tuple[str, int]]] = {}
    for job in yaml_file(PROMETHEUS)["scrape_configs"]:
        targets = out.setdefault(job["job_name"], set())
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            targets.update((name, int(dns["port"])) for name in dns["names"])
    return out


def test_prometheus_scrapes_every_roomwarden_process(compose: dict[str, Any]) -> None:
    services = roomwarden_services(compose)
    assert {"roomwarden", "asr-worker", "policy-worker", "audit-worker", "console"} <= \
        set(services)
    jobs = scrape_targets()
    for name, command in services.items():
        assert command in METRICS_PORTS, f"{name}: which /metrics port does {command} use?"
        env = compose["services"][name].get("environment", {})
        assert not any("METRICS_PORT" in k or k == "ROOMWARDEN_HTTP__PORT" for k in env), \
            f"{name}: port overridden in compose; teach this test to read it"
        scraped_by = [job for job, targets in jobs.items()
                      if (name, METRICS_PORTS[command]) in targets]
        assert len(scraped_by) == 1, f"{name} on :{METRICS_PORTS[command]}: jobs {scraped_by}"
        # The dashboard's job variable lists roomwarden* jobs only.
        assert scraped_by[0].startswith("roomwarden")


def test_kafka_init_creates_every_topic_the_processes_use(compose: dict[str, Any]) -> None:
    # A consumer that subscribes before its topic exists may see no partitions for minutes,
    # and auto-created topics get one partition: the stack creates them all up front.
    used = {str(value) for section in (KafkaSettings(), AsrWorkerSettings(),
                                       PolicyWorkerSettings(), AuditWorkerSettings())
            for field, value in section.model_dump().items() if field.endswith("_topic")}
    created = set(re.findall(r"roomwarden\.[\w.]+", " ".join(
        compose["services"]["kafka-init"]["command"])))
    assert used - created == set()


# --- the real parsers, where installed --------------------------------------------------------

def as_prometheus_query(expr: str) -> str:
    """A dashboard query as Grafana sends it with every variable at All."""
    return (expr.replace("$__rate_interval", "1m").replace("$job", "roomwarden.*")
            .replace("$instance", ".*"))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_config_and_every_query(tmp_path: Path) -> None:
    subprocess.run(["promtool", "check", "config", "--syntax-only", str(PROMETHEUS)],
                   check=True, capture_output=True, timeout=60)
    rules = [{"record": f"dashboard:query_{i}", "expr": as_prometheus_query(expr)}
             for i, (_, expr) in enumerate(queries(load_dashboard()))]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}),
                    encoding="utf-8")
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
