"""deploy/kserve validates against KServe's own CRD schemas (deploy/kserve/schemas, taken from
kserve/kserve with their commit noted), and agrees with ovserve: every flag the runtime passes
is one ovserve's CLI takes, every probe is a route the server answers, the kustomization lists
every manifest, the services name a runtime that exists. No cluster runs here: what KServe does
at run time (storage initializer, routing, autoscaling) is not tested."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from fastapi.testclient import TestClient

from ovserve.cli import build_parser
from tests.conftest import REPO

KSERVE = REPO / "deploy/kserve"
SCHEMAS = {
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "clusterservingruntime-v1alpha1",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntime-v1alpha1",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-v1beta1",
}


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(KSERVE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


@pytest.mark.parametrize(("name", "doc"), manifests(), ids=[n for n, _ in manifests()])
def test_manifest_validates_against_kserves_crd_schema(name: str, doc: dict[str, Any]) -> None:
    schema_name = SCHEMAS[(doc["apiVersion"], doc["kind"])]
    schema = json.loads((KSERVE / "schemas" / f"{schema_name}.json").read_text())
    assert "kserve/kserve" in schema["$comment"]  # where it came from, at which commit
    jsonschema.Draft7Validator(schema).validate(doc)


def test_a_broken_manifest_is_caught() -> None:
    """The schemas do reject: a misspelt field and a wrong type fail validation."""
    schema = json.loads((KSERVE / "schemas/inferenceservice-v1beta1.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    bad = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
           "spec": {"predictor": {"minReplicas": "one"}}}
    assert list(validator.iter_errors(bad))


def containers() -> list[dict[str, Any]]:
    out = []
    for _, doc in manifests():
        spec = doc["spec"]
        out += spec.get("containers", []) + spec.get("predictor", {}).get("containers", [])
    return out


def test_container_args_are_ovserve_flags() -> None:
    for container in containers():
        args = [a.replace("{{.Name}}", "model") for a in container["args"]]
        parsed = build_parser().parse_args(args)  # exits on an unknown flag
        assert parsed.rest_port == 8080 and parsed.port == 9000


def test_probes_are_routes_the_server_answers() -> None:
    from ovserve.engine import EngineRegistry
    from ovserve.nodes import BUILTIN_CALCULATORS
    from ovserve.serving.registry import Registry
    from ovserve.transport.kserve import DataPlane
    from ovserve.transport.metrics import Metrics
    from ovserve.transport.rest.app import build_app
    from ovserve.transport.state import ServerState

    engines = EngineRegistry()
    registry = Registry(BUILTIN_CALCULATORS, engines)
    app = build_app(DataPlane(registry, Metrics(engines), ServerState(registry)))
    client = TestClient(app)
    for container in containers():
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe in container:
                assert client.get(container[probe]["httpGet"]["path"]).status_code == 200
                assert container[probe]["httpGet"]["port"] == 8080


def test_kustomization_lists_every_manifest_and_runtimes_exist() -> None:
    kustomization = yaml.safe_load((KSERVE / "kustomization.yaml").read_text())
    files = {p.name for p in KSERVE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    runtimes = {doc["metadata"]["name"] for _, doc in manifests()
                if doc["kind"].endswith("ServingRuntime")}
    for _, doc in manifests():
        model = doc["spec"].get("predictor", {}).get("model")
        if model is not None:
            assert model["runtime"] in runtimes


def test_the_llm_storage_layout_is_a_prepared_model_folder(default_model_dir: Path) -> None:
    """What the runtime serves at /mnt/models: a model folder with its graph.pbtxt."""
    assert (default_model_dir / "graph.pbtxt").is_file()
    assert (default_model_dir / "openvino_model.xml").is_file()
