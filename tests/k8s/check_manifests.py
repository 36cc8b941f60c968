"""Renders both kustomize overlays of deploy/k8s and checks them offline:
schema validation (kubernetes-validate --strict, Kubernetes 1.37 schemas),
the properties the deployment promises (probes, non-root, read-only root,
dropped capabilities, resources, replicas and strategy per database), that
the ConfigMaps carry exactly deploy/envoy/envoy.yaml and the descriptor
`tokend descriptor` writes, that Envoy accepts the shipped config, that the
NetworkPolicy admits exactly what the README's security section says, and
that every image is pinned by digest.

    python tests/k8s/check_manifests.py      # needs kustomize, kubernetes-validate, envoy; TOKEND=binary
"""

import base64
import copy
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
TOKEND = os.environ.get("TOKEND", str(ROOT / "target/debug/tokend"))
failures = []

# What the NetworkPolicy admits; README.md's security section names the same.
CLIENT_LABEL = ("tokend.io/client", "true")
MONITORING_NAMESPACE = "monitoring"
API_PORTS = {50051, 8080}
METRICS_PORT = 9090
EGRESS = {(53, "UDP"), (53, "TCP"), (5432, "TCP")}
# The images the shipped overlays leave for the operator to pin (README).
OPERATOR_PINS = {"tokend:0.1.0", "envoyproxy/envoy:v1.40.0"}


def check(condition, what):
    if not condition:
        failures.append(what)


def render(overlay):
    out = subprocess.run(["kustomize", "build", str(K8S / "overlays" / overlay)],
                         capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return out, {(d["kind"], d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] in ("ConfigMap", "Secret") else d["metadata"]["name"]): d for d in docs}


def validate(text, expect_ok=True):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        result = subprocess.run(["kubernetes-validate", "--strict", "--quiet", f.name], capture_output=True, text=True)
    return result.returncode == 0, result.stdout + result.stderr


def container_checks(overlay, container):
    name = f"{overlay}: container {container['name']}"
    security = container.get("securityContext", {})
    check(security.get("readOnlyRootFilesystem") is True, f"{name}: read-only root filesystem")
    check(security.get("allowPrivilegeEscalation") is False, f"{name}: no privilege escalation")
    check(security.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: drops ALL capabilities")
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        check({"cpu", "memory"} <= set(resources.get(kind, {})), f"{name}: {kind} for cpu and memory")


def ports_of(rule):
    return {(p["port"], p.get("protocol", "TCP")) for p in rule.get("ports", [])}


def networkpolicy_problems(policy, pod_labels):
    """What is wrong with the rendered NetworkPolicy, as a list (empty: as promised)."""
    problems = []
    spec = policy.get("spec", {})
    if spec.get("podSelector") != {"matchLabels": pod_labels}:
        problems.append(f"selects {spec.get('podSelector')}, not the tokend pods {pod_labels}")
    if sorted(spec.get("policyTypes", [])) != ["Egress", "Ingress"]:
        problems.append("does not restrict both Ingress and Egress")
    ingress = spec.get("ingress", [])
    for rule in ingress:
        if not rule.get("from") or not rule.get("ports"):
            problems.append(f"an ingress rule admits every peer or every port: {rule}")
    api_peer = {"podSelector": {"matchExpressions": [
        {"key": CLIENT_LABEL[0], "operator": "In", "values": [CLIENT_LABEL[1]]}]}}
    metrics_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}}}
    # Port sets as sorted lists: a set's repr follows string hashing, which
    # PYTHONHASHSEED changes from run to run.
    expected = [(sorted((p, "TCP") for p in API_PORTS), [api_peer]), ([(METRICS_PORT, "TCP")], [metrics_peer])]
    actual = [(sorted(ports_of(rule)), rule.get("from")) for rule in ingress]
    if sorted(map(repr, actual)) != sorted(map(repr, expected)):
        problems.append(f"ingress is {actual}, not API ports {sorted(API_PORTS)} from pods labelled "
                        f"{CLIENT_LABEL[0]}={CLIENT_LABEL[1]} in the namespace and {METRICS_PORT} from "
                        f"the namespace {MONITORING_NAMESPACE}")
    egress = spec.get("egress", [])
    allowed = set().union(*(ports_of(rule) for rule in egress)) if egress else set()
    if allowed != EGRESS or any(not rule.get("ports") for rule in egress):
        problems.append(f"egress allows {sorted(allowed)} (every port if a rule has none), not {sorted(EGRESS)}")
    return problems


def networkpolicy_checks(overlay, objects, deployment, tokend):
    policy = objects.get(("NetworkPolicy", "tokend"))
    check(policy is not None, f"{overlay}: a NetworkPolicy for tokend")
    if policy is None:
        return
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for problem in networkpolicy_problems(policy, pod_labels):
        check(False, f"{overlay}: NetworkPolicy {problem}")
    # The ports it opens are the ones the pod serves on.
    pod = deployment["spec"]["template"]["spec"]
    served = {p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])}
    check(served == API_PORTS | {METRICS_PORT}, f"{overlay}: the pod serves {served}, the policy opens {API_PORTS | {METRICS_PORT}}")
    env = {e["name"]: e.get("value") for e in tokend["env"]}
    check(env.get("TOKEND_METRICS_LISTEN", "").endswith(f":{METRICS_PORT}"), f"{overlay}: metrics on the port the policy guards")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    check(annotations.get("prometheus.io/port") == str(METRICS_PORT), f"{overlay}: scrape annotation names the metrics port")


def pins(*args, dockerfile=None):
    env = dict(os.environ, **({"DOCKERFILE": str(dockerfile)} if dockerfile else {}))
    result = subprocess.run([str(ROOT / "deploy/check-image-pins"), *map(str, args)], capture_output=True, text=True, env=env)
    unpinned = set(re.findall(r"^not pinned by digest: (\S+)", result.stdout, re.M))
    return result.returncode, unpinned, result.stdout + result.stderr


def image_pin_checks():
    code, unpinned, out = pins()
    check(code == 0, f"deploy/Dockerfile: base images not pinned by digest:\n{out}")
    # The shipped overlays name exactly the two images an operator pins.
    code, unpinned, out = pins(K8S / "overlays/sqlite", K8S / "overlays/postgres")
    check(code == 1 and unpinned == OPERATOR_PINS, f"check-image-pins on the shipped overlays: expected {OPERATOR_PINS} unpinned:\n{out}")
    # An operator's overlay that pins them as the README says passes, and renders valid.
    code, unpinned, out = pins(ROOT / "tests/k8s/pinned")
    check(code == 0, f"check-image-pins on tests/k8s/pinned:\n{out}")
    text = subprocess.run(["kustomize", "build", str(ROOT / "tests/k8s/pinned")], capture_output=True, text=True, check=True).stdout
    good, report = validate(text)
    check(good, f"tests/k8s/pinned: kubernetes-validate --strict failed:\n{report}")
    # The Dockerfile check is not vacuous: a tag, an ARG default with a tag, an ARG without default fail.
    with tempfile.TemporaryDirectory() as tmp:
        for text, ref in [("FROM debian:12 AS x\nFROM x\n", "debian:12"),
                          ("ARG B=debian:12@sha256:abc\nFROM ${B}\n", "debian:12@sha256:abc"),
                          ("ARG B\nFROM $B\n", "$B")]:
            path = Path(tmp) / "Dockerfile"
            path.write_text(text)
            code, unpinned, out = pins(dockerfile=path)
            check(code == 1 and ref in unpinned, f"check-image-pins accepts {text!r}: {out}")


def deployment_checks(overlay, objects, descriptor):
    deployment = objects[("Deployment", "tokend")]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    check(spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(),
          f"{overlay}: selector matches the pod labels")
    check(pod["securityContext"].get("runAsNonRoot") is True, f"{overlay}: runAsNonRoot")
    containers = {c["name"]: c for c in pod["containers"]}
    check(set(containers) == {"tokend", "envoy"}, f"{overlay}: tokend and the envoy sidecar")
    for container in pod["containers"] + pod.get("initContainers", []):
        container_checks(overlay, container)

    tokend = containers["tokend"]
    probes = {kind: tokend.get(kind, {}).get("grpc") for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    for kind, grpc in probes.items():
        check(grpc is not None and grpc.get("port") == 50051, f"{overlay}: native gRPC {kind} on 50051")
    check(probes["readinessProbe"] and probes["readinessProbe"].get("service") == "tokend.v1.ApiTokenService",
          f"{overlay}: readiness follows the database")
    check(probes["livenessProbe"] and probes["livenessProbe"].get("service") == "liveness",
          f"{overlay}: liveness does not restart on a database outage")
    env = {e["name"]: e for e in tokend["env"]}
    check(env["TOKEND_DATABASE_URL"].get("valueFrom", {}).get("secretKeyRef", {}).get("name", "").startswith("tokend-database"),
          f"{overlay}: database URL from the Secret")
    check(env["TOKEND_LISTEN"]["value"] == "0.0.0.0:50051", f"{overlay}: gRPC reachable by the Service")

    volumes = {v["name"]: v for v in pod["volumes"]}
    envoy_map = objects[("ConfigMap", "tokend-envoy")]
    descriptor_map = objects[("ConfigMap", "tokend-descriptor")]
    check(volumes["envoy-config"]["configMap"]["name"] == envoy_map["metadata"]["name"], f"{overlay}: envoy ConfigMap mounted")
    check(volumes["descriptor"]["configMap"]["name"] == descriptor_map["metadata"]["name"], f"{overlay}: descriptor ConfigMap mounted")
    check(envoy_map["data"]["envoy.yaml"] == (ROOT / "deploy/envoy/envoy.yaml").read_text(),
          f"{overlay}: the envoy ConfigMap is deploy/envoy/envoy.yaml")
    check(base64.b64decode(descriptor_map["binaryData"]["tokend.pb"]) == descriptor,
          f"{overlay}: the descriptor ConfigMap is what `tokend descriptor` writes (regenerate deploy/k8s/base/tokend.pb)")
    mounts = {m["mountPath"] for m in containers["envoy"]["volumeMounts"]}
    check({"/etc/envoy", "/etc/tokend"} <= mounts, f"{overlay}: envoy sees its config and /etc/tokend/tokend.pb")

    service = objects[("Service", "tokend")]
    check({(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {(50051, "grpc"), (8080, "http")},
          f"{overlay}: Service exposes gRPC 50051 and HTTP 8080")
    check(service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items(), f"{overlay}: Service selects the pods")
    pdb = objects[("PodDisruptionBudget", "tokend")]
    check(pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"], f"{overlay}: PDB selects the pods")
    return deployment, pdb, tokend, pod


# deploy/k8s/examples/gateway/envoy.yaml is deploy/envoy/ext-authz.yaml with
# exactly these changes: the upstreams by DNS name, not loopback.
GATEWAY_ENVOY_CHANGES = [
    ("type: STATIC", "type: STRICT_DNS"),
    ("address: 127.0.0.1, port_value: 8091", "address: my-service, port_value: 8080"),
    ("address: 127.0.0.1, port_value: 50051", "address: tokend, port_value: 50051"),
]


def example_checks():
    """The ext_authz examples (issue 17): the gateway Deployment renders and is
    schema-valid; its Envoy config is the tested one and Envoy accepts it;
    the Istio mesh ConfigMap is schema-valid; the AuthorizationPolicy (a CRD
    kubernetes-validate has no schema for) is checked field by field and
    names the provider the mesh config declares."""
    gateway = K8S / "examples/gateway"
    expected = (ROOT / "deploy/envoy/ext-authz.yaml").read_text()
    for old, new in GATEWAY_ENVOY_CHANGES:
        check(old in expected, f"deploy/envoy/ext-authz.yaml has no {old!r}")
        expected = expected.replace(old, new)
    check((gateway / "envoy.yaml").read_text() == expected,
          "deploy/k8s/examples/gateway/envoy.yaml is not deploy/envoy/ext-authz.yaml with the DNS upstreams")
    out = subprocess.run(["kustomize", "build", str(gateway)], capture_output=True, text=True, check=True).stdout
    good, report = validate(out)
    check(good, f"examples/gateway: kubernetes-validate --strict failed:\n{report}")
    docs = {(d["kind"], d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] == "ConfigMap" else d["metadata"]["name"]): d
            for d in yaml.safe_load_all(out) if d}
    deployment = docs.get(("Deployment", "tokend-gateway"), {})
    pod = deployment.get("spec", {}).get("template", {})
    check(pod.get("metadata", {}).get("labels", {}).get(CLIENT_LABEL[0]) == CLIENT_LABEL[1],
          "examples/gateway: pods labelled as tokend clients (its NetworkPolicy admits them)")
    for container in pod.get("spec", {}).get("containers", []):
        container_checks("examples/gateway", container)
    config = yaml.safe_load(docs.get(("ConfigMap", "tokend-gateway-envoy"), {}).get("data", {}).get("envoy.yaml", "{}"))
    check(config == yaml.safe_load(expected), "examples/gateway: the ConfigMap carries envoy.yaml")
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    authz = {f["name"]: f.get("typed_config", {}) for f in manager["http_filters"]}["envoy.filters.http.ext_authz"]
    check(authz.get("failure_mode_allow") is False, "ext-authz.yaml: fails closed")
    check(authz["grpc_service"]["envoy_grpc"]["cluster_name"] == "tokend", "ext-authz.yaml: asks tokend")
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    check(any("context_extensions" in str(r.get("typed_per_filter_config", {})) for r in routes),
          "ext-authz.yaml: a route with requirements")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("deploy/envoy/ext-authz.yaml", "deploy/k8s/examples/gateway/envoy.yaml"):
            result = subprocess.run(["envoy", "--mode", "validate", "-c", str(ROOT / name), "--base-id", "20"],
                                    capture_output=True, text=True, cwd=tmp)
            check(result.returncode == 0, f"envoy --mode validate {name}: {result.stdout[-2000:]}{result.stderr[-2000:]}")

    istio = K8S / "examples/istio"
    mesh_text = (istio / "mesh-config.yaml").read_text()
    good, report = validate(mesh_text)
    check(good, f"examples/istio/mesh-config.yaml: kubernetes-validate --strict failed:\n{report}")
    mesh = yaml.safe_load(yaml.safe_load(mesh_text)["data"]["mesh"])
    providers = {p["name"]: p for p in mesh.get("extensionProviders", [])}
    policy = yaml.safe_load((istio / "authorization-policy.yaml").read_text())
    check(policy.get("apiVersion") == "security.istio.io/v1" and policy.get("kind") == "AuthorizationPolicy",
          "examples/istio: an AuthorizationPolicy of security.istio.io/v1")
    spec = policy.get("spec", {})
    check(set(spec) <= {"selector", "targetRef", "targetRefs", "action", "provider", "rules"},
          f"examples/istio: unknown AuthorizationPolicy fields {set(spec)}")
    check(spec.get("action") == "CUSTOM", "examples/istio: action CUSTOM")
    provider = providers.get(spec.get("provider", {}).get("name"))
    check(provider is not None, "examples/istio: the policy's provider is declared in the mesh config")
    grpc = (provider or {}).get("envoyExtAuthzGrpc", {})
    check(set(grpc) <= {"service", "port", "timeout", "failOpen", "statusOnError", "includeRequestBodyInCheck",
                        "clearRouteCache"}, f"examples/istio: unknown envoyExtAuthzGrpc fields {set(grpc)}")
    check(grpc.get("port") == 50051 and grpc.get("service", "").startswith("tokend."),
          "examples/istio: the provider is tokend's gRPC port")
    check(grpc.get("failOpen") is False, "examples/istio: fails closed")


def main():
    descriptor = subprocess.run([TOKEND, "descriptor"], capture_output=True, check=True).stdout
    check((K8S / "base/tokend.pb").read_bytes() == descriptor, "deploy/k8s/base/tokend.pb is stale")
    check((K8S / "base/envoy.yaml").read_text() == (ROOT / "deploy/envoy/envoy.yaml").read_text(),
          "deploy/k8s/base/envoy.yaml differs from deploy/envoy/envoy.yaml")

    # The README tells operators what the policy admits.
    readme = (ROOT / "README.md").read_text()
    for text in (f'{CLIENT_LABEL[0]}: "{CLIENT_LABEL[1]}"', f"kubernetes.io/metadata.name: {MONITORING_NAMESPACE}",
                 "## Security: what an operator must configure", "sslmode=verify-full&sslrootcert=/etc/tokend-db-ca/ca.crt",
                 "--database-allow-insecure-transport", "deploy/check-image-pins"):
        check(text in readme, f"README.md does not say {text}")

    # The validator is not vacuous: an unknown field and a wrong type fail.
    good, _ = validate("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 1}], bogus: 1}\n")
    check(not good, "kubernetes-validate --strict accepts an unknown field")
    good, _ = validate("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: three}\n")
    check(not good, "kubernetes-validate accepts a string replica count")

    for overlay in ("sqlite", "postgres"):
        text, objects = render(overlay)
        good, report = validate(text)
        check(good, f"{overlay}: kubernetes-validate --strict failed:\n{report}")
        deployment, pdb, tokend, pod = deployment_checks(overlay, objects, descriptor)
        networkpolicy_checks(overlay, objects, deployment, tokend)
        if overlay == "postgres" and ("NetworkPolicy", "tokend") in objects:
            # The policy check is not vacuous: kustomize's `labels` adds the app
            # label to a client podSelector.matchLabels (admitting only tokend);
            # an open ingress rule, or open egress, must fail too.
            policy = objects[("NetworkPolicy", "tokend")]
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            for what, mutate in [
                ("client matchLabels with the app label",
                 lambda p: p["spec"]["ingress"][0]["from"].__setitem__(
                     0, {"podSelector": {"matchLabels": {CLIENT_LABEL[0]: CLIENT_LABEL[1], **labels}}})),
                ("metrics from every namespace",
                 lambda p: p["spec"]["ingress"][1]["from"].__setitem__(0, {"namespaceSelector": {}})),
                ("an ingress rule without peers", lambda p: p["spec"]["ingress"][0].pop("from")),
                ("egress without ports", lambda p: p["spec"]["egress"].append({})),
                ("no egress restriction", lambda p: p["spec"].__setitem__("policyTypes", ["Ingress"])),
            ]:
                broken = copy.deepcopy(policy)
                mutate(broken)
                check(networkpolicy_problems(broken, labels), f"the NetworkPolicy check accepts {what}")
        replicas = deployment["spec"]["replicas"]
        if overlay == "sqlite":
            check(replicas == 1, "sqlite: one replica")
            check(deployment["spec"]["strategy"] == {"type": "Recreate"}, "sqlite: Recreate")
            check(("PersistentVolumeClaim", "tokend-data") in objects, "sqlite: a PersistentVolumeClaim")
            check({"name": "data", "mountPath": "/var/lib/tokend"} in tokend.get("volumeMounts", []), "sqlite: data volume mounted")
            secret = objects[("Secret", "tokend-database")]
            url = base64.b64decode(secret["data"]["url"]).decode()
            check(url.startswith("sqlite:///var/lib/tokend/"), "sqlite: the database file is on the volume")
            check(pdb["spec"].get("maxUnavailable") == 1 and "minAvailable" not in pdb["spec"], "sqlite: PDB lets the one pod go")
            check(("HorizontalPodAutoscaler", "tokend") not in objects, "sqlite: no autoscaler (one writer)")
        else:
            check(replicas == 3, "postgres: three replicas")
            hpa = objects[("HorizontalPodAutoscaler", "tokend")]
            check(hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tokend"},
                  "postgres: HPA targets the Deployment")
            check(hpa["spec"]["minReplicas"] >= 3 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"], "postgres: HPA bounds")
            init = pod.get("initContainers", [])
            check([c["args"] for c in init] == [["migrate"]], "postgres: an init container migrates first")
            check(pdb["spec"].get("minAvailable", 0) < replicas, "postgres: PDB leaves room for a drain")
            check(("Secret", "tokend-database") not in objects, "postgres: the Secret is the operator's, not shipped")
            # sslmode=verify-full&sslrootcert=/etc/tokend-db-ca/ca.crt (README) finds the CA in both containers.
            ca_volume = {v["name"]: v for v in pod["volumes"]}.get("database-ca", {})
            check(ca_volume.get("configMap") == {"name": "tokend-database-ca", "optional": True},
                  "postgres: the database CA comes from the optional ConfigMap tokend-database-ca")
            for container in [tokend] + init:
                mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
                check(mounts.get("/etc/tokend-db-ca") == "database-ca", f"postgres: {container['name']} mounts the database CA")

    image_pin_checks()
    example_checks()

    # The sidecar config keeps its promises (issue 4).
    envoy = yaml.safe_load((ROOT / "deploy/envoy/envoy.yaml").read_text())
    admin = envoy["admin"]["address"]["socket_address"]
    check(admin["address"] == "127.0.0.1", "envoy: admin interface on loopback only")
    listener = envoy["static_resources"]["listeners"][0]
    check(listener["address"]["socket_address"]["port_value"] == 8080, "envoy: listener on 8080")
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    check(manager.get("use_remote_address") is True, "envoy: x-forwarded-for set from the connection")
    filters = {f["name"]: f.get("typed_config", {}) for f in manager["http_filters"]}
    transcoder = filters["envoy.filters.http.grpc_json_transcoder"]
    check(transcoder["services"] == ["tokend.v1.ApiTokenService"], "envoy: transcodes tokend.v1.ApiTokenService")
    check(transcoder["proto_descriptor"] == "/etc/tokend/tokend.pb", "envoy: descriptor where the pod mounts it")
    check(transcoder["print_options"]["always_print_primitive_fields"] is True
          and transcoder["print_options"]["preserve_proto_field_names"] is False, "envoy: defaults printed, lowerCamelCase")
    check(transcoder["convert_grpc_status"] is True, "envoy: gRPC status to HTTP status")
    check(transcoder["request_validation_options"]["reject_unknown_query_parameters"] is True, "envoy: unknown query parameters refused")
    check(transcoder["max_request_body_size"] <= 1 << 20, "envoy: request bodies capped")
    cluster = envoy["static_resources"]["clusters"][0]
    upstream = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    check((upstream["address"], upstream["port_value"]) == ("127.0.0.1", 50051), "envoy: upstream 127.0.0.1:50051")
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    check("http2_protocol_options" in options["explicit_http_config"], "envoy: upstream over HTTP/2")

    # Envoy accepts the config it is given in the pod.
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tokend.pb").write_bytes(descriptor)
        config = (K8S / "base/envoy.yaml").read_text().replace("/etc/tokend/tokend.pb", f"{tmp}/tokend.pb")
        (Path(tmp) / "envoy.yaml").write_text(config)
        result = subprocess.run(["envoy", "--mode", "validate", "-c", f"{tmp}/envoy.yaml", "--base-id", "19"],
                                capture_output=True, text=True)
        check(result.returncode == 0, f"envoy --mode validate: {result.stdout[-2000:]}{result.stderr[-2000:]}")

    if failures:
        print("manifest checks failed:\n- " + "\n- ".join(failures))
        sys.exit(1)
    print("manifests: sqlite and postgres overlays rendered, schema-valid (1.37, strict), and as promised; "
          "ext_authz examples (gateway rendered and schema-valid, Envoy configs accepted, Istio mesh ConfigMap "
          "schema-valid, AuthorizationPolicy checked field by field)")


if __name__ == "__main__":
    main()
