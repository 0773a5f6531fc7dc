"""The image definitions agree with the manifests that run them: the KServe ServingRuntime
(deploy/manifests/kserve-servingruntime.yaml) runs exactly the Dockerfile's `kserve` target's
entry point, on the ports that target exposes and its HEALTHCHECK probes; a build without
--target stays the built-in engine. Static (no image build): deploy/test_image.sh builds and
runs both images."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def stages() -> dict[str, dict]:
    """Dockerfile stages by name (the last, unnamed one as ''): base, ENTRYPOINT, CMD, ENV,
    EXPOSE, inheriting from a base stage as a build does."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out: dict[str, dict] = {}
    cur: dict | None = None
    for line in text.splitlines():
        line = line.strip()
        if m := re.fullmatch(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I):
            base = out.get(m.group(1), {})
            cur = {"from": m.group(1), "entrypoint": base.get("entrypoint"),
                   "cmd": base.get("cmd"), "env": dict(base.get("env", {})),
                   "expose": set(base.get("expose", set()))}
            out[m.group(2) or ""] = cur
        elif cur is None:
            continue
        elif m := re.fullmatch(r"(ENTRYPOINT|CMD)\s+(\[.*\])", line):
            cur[m.group(1).lower()] = json.loads(m.group(2))
        elif m := re.fullmatch(r"ENV\s+(\w+)=(\S+)", line):
            cur["env"][m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"EXPOSE\s+(.+)", line):
            cur["expose"] |= {int(p) for p in m.group(1).split()}
    return out


def test_servingruntime_runs_the_kserve_targets_entry_point():
    kserve = stages()["kserve"]
    rt = yaml.safe_load((ROOT / "deploy/manifests/kserve-servingruntime.yaml").read_text())
    (container,) = rt["spec"]["containers"]
    assert container["image"].split(":")[0].endswith("steport-serve-kserve")
    args = (container.get("command") or kserve["entrypoint"]) + container["args"]
    assert args == kserve["entrypoint"] + kserve["cmd"]
    assert args[:2] == ["steport", "serve"] and args[args.index("--engine") + 1] == "kserve"
    http_port = int(args[args.index("--port") + 1])
    grpc_port = int(args[args.index("--grpc-port") + 1])
    assert [p["containerPort"] for p in container["ports"]] == [http_port]
    assert {http_port, grpc_port} <= kserve["expose"]
    # the image's HEALTHCHECK probes STEPORT_PORT; the manifest's probes the same port
    assert kserve["env"]["STEPORT_PORT"] == str(http_port)
    assert container["readinessProbe"]["httpGet"]["port"] == http_port
    assert rt["metadata"]["annotations"]["prometheus.kserve.io/port"] == str(http_port)


def test_build_without_target_is_the_builtin_engine():
    s = stages()
    default = s[""]
    assert default["from"] == "runtime" and default["cmd"] == s["runtime"]["cmd"]
    assert "--engine" not in default["cmd"] and default["entrypoint"] == ["steport"]
