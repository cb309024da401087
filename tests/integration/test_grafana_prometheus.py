"""Every dashboard query, run by a real Prometheus against RoomWarden's real metric objects.

Each kind of process (serve, the ASR, policy and audit workers, the console) gets its registry
served on 127.0.0.1 by prometheus_client, with every metric moving; a Prometheus scrapes them
under the job names of deploy/prometheus/prometheus.yml, and each query of the dashboard must
come back with series carrying the labels its legend names. Skipped where no `prometheus`
binary is installed (Debian: `apt-get install prometheus`).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from roomwarden.broker import free_port
from tests.grafana_dashboard import load_dashboard, metric_objects, panels, process_registries

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed"),
]
JOBS = {"serve": "roomwarden-serve", "asr-worker": "roomwarden-asr-worker",
        "policy-worker": "roomwarden-policy-worker", "audit-worker": "roomwarden-audit-worker",
        "console": "roomwarden-console"}
SCRAPE_S = 1


def label_values() -> dict[str, set[str]]:
    """Label values the dashboard matches on (e.g. reason="asr_overload"), by label name."""
    out: dict[str, set[str]] = {}
    for panel in panels(load_dashboard()):
        for target in panel.get("targets", []):
            for name, value in re.findall(r'(\w+)="([^"$]*)"', target["expr"]):
                out.setdefault(name, set()).add(value)
    return out


def keep_moving(registries: list[CollectorRegistry], stop: threading.Event) -> None:
    """Every labelled metric gets children (one per value the dashboard matches on, and one
    more); counters and histograms keep growing."""
    rng = random.Random(7)
    matched = label_values()
    collectors = [c for r in registries for c in metric_objects(r)]
    while not stop.is_set():
        for c in collectors:
            names = c._labelnames  # noqa: SLF001
            children = [c]
            if names:
                values = {f"test_{names[0]}"}.union(*(matched.get(n, set()) for n in names))
                children = [c.labels(**{n: value for n in names}) for value in values]
            for metric in children:
                if isinstance(metric, Counter):
                    metric.inc(rng.random())
                elif isinstance(metric, Histogram):
                    metric.observe(rng.uniform(0.1, 3.0))
                elif isinstance(metric, Gauge) and names:
                    metric.set(rng.randint(1, 5))
        stop.wait(0.2)


def query(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:  # 127.0.0.1 only
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("prometheus")
    registries = process_registries()
    servers = {kind: start_http_server(0, addr="127.0.0.1", registry=registry)[0]
               for kind, registry in registries.items()}
    stop = threading.Event()
    mover = threading.Thread(target=keep_moving, args=(list(registries.values()), stop),
                             daemon=True)
    mover.start()
    config = {"global": {"scrape_interval": f"{SCRAPE_S}s"},
              "scrape_configs": [
                  {"job_name": JOBS[kind],
                   "static_configs": [{"targets": [f"127.0.0.1:{server.server_port}"]}]}
                  for kind, server in servers.items()]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # every target scraped often enough for rate() over 10 s
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()
            try:
                result = query(base, "/api/v1/query",
                               query='count_over_time(up{job=~"roomwarden.*"}[30s]) >= 4')
                if len(result["result"]) == len(JOBS):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp / "prometheus.log").read_text()[-3000:]
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        stop.set()
        mover.join()
        for server in servers.values():
            server.shutdown()


def as_sent(expr: str) -> str:
    """The query as Grafana sends it with job and instance at All (their allValue)."""
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    return (expr.replace("$__rate_interval", f"{4 * SCRAPE_S + 6}s")
            .replace("$job", variables["job"]["allValue"])
            .replace("$instance", variables["instance"]["allValue"]))


def test_every_panel_query_returns_labelled_series(prometheus: str) -> None:
    empty, unlabelled = [], []
    for panel in panels(load_dashboard()):
        for target in panel.get("targets", []):
            where = f"{panel['title']!r} {target['refId']}"
            series = query(prometheus, "/api/v1/query", query=as_sent(target["expr"]))["result"]
            if not series:
                empty.append(where)
            wanted = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            if any(not wanted <= set(s["metric"]) for s in series):
                unlabelled.append(f"{where}: {wanted} vs {[s['metric'] for s in series]}")
    assert not empty, f"no data: {empty}"
    assert not unlabelled, unlabelled


def test_job_and_instance_variables_list_every_process(prometheus: str) -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    values = {}
    for name in ("job", "instance"):
        selector, label = re.fullmatch(r"label_values\((.*),\s*(\w+)\)",
                                       variables[name]["query"]["query"]).groups()  # type: ignore[union-attr]
        values[name] = query(prometheus, f"/api/v1/label/{label}/values",
                             **{"match[]": as_sent(selector)})
    assert sorted(values["job"]) == sorted(JOBS.values())
    assert len(values["instance"]) == len(JOBS)


def test_policy_info_table_shows_the_pack(prometheus: str) -> None:
    (table,) = [p for p in panels(load_dashboard()) if p["title"] == "Rule pack in force"]
    (target,) = table["targets"]
    assert target["instant"] and target["format"] == "table"
    series = query(prometheus, "/api/v1/query", query=as_sent(target["expr"]))["result"]
    assert {s["metric"]["job"] for s in series} == {JOBS["serve"], JOBS["policy-worker"]}
    assert all(re.fullmatch(r"[0-9a-f]{64}", s["metric"]["sha256"]) for s in series)


def test_targets_are_one_per_kind_of_process(prometheus: str) -> None:
    targets = query(prometheus, "/api/v1/targets")["activeTargets"]
    assert sorted(t["labels"]["job"] for t in targets) == sorted(JOBS.values())
    assert all(t["health"] == "up" for t in targets), targets
