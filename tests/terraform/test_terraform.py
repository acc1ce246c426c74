"""terraform/ checked offline: no provider, no cloud, no plan.

Terraform cannot download providers here, so nothing is planned. What is checked instead:

- `terraform fmt` is clean.
- terraform/locals.tf (it only reads variables and files) is evaluated by Terraform itself with
  `terraform console`, next to the real catalog and a manifest built by `functions.build.build`: every
  derived name and setting is compared with shared/catalog.py's naming rules, with shared/config.py (the
  CMP_* variables are parsed by the real Settings), and with what emulators/provision.py creates.
- The HCL (python-hcl2) proves that each catalog- or manifest-driven resource iterates (for_each) over
  a module variable that the root fills from exactly that local, and that no catalog name is written
  by hand in any .tf file.
- IAM: no primitive role anywhere, project-level grants only from an allow-list, one service account
  per function; service callers (CALLS), identity administrators and run-time secret holders (NEEDS)
  exactly as the manifest declares them, the latter conditioned to their API's secret prefix. No secret
  values in .tf or .tfvars files.
- checkov (terraform/checkov.sh, in its own virtualenv) reports no failed check.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from emulators.provision import BACKSTOP_EXTRA_ATTEMPTS, Provisioned, provision
from functions.build import ManifestEntry, build
from shared.catalog import EXTERNAL, Catalog, load_catalog
from shared.config import Settings
from shared.idempotency import COLLECTION as IDEMPOTENCY
from shared.intake import ATTEMPTS, PROCESSED
from shared.uow import OUTBOX

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
SKIP_DIRS = {".terraform", ".venv-checkov"}
TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")

PROJECT = "cmp-offline-test"
REGION = "europe-west1"
BILLING = "0A0A0A-0B0B0B-0C0C0C"
ENVIRONMENTS = ("dev", "staging", "prod")
PARTNER_READER = "serviceAccount:reader@partner-project.iam.gserviceaccount.com"
SECRET = "crm-webhook-signing-key"

# The only roles a google_project_iam_* resource may grant. Firestore has no narrower scope than the
# project; logs, metrics and traces are project-wide sinks by nature.
PROJECT_ROLES = {
    "roles/datastore.user",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/cloudtrace.agent",
}
# One justified exception, for HTTP functions only: shared/auth.py verifies ID tokens with
# check_revoked=True, which reads the user (firebaseauth.users.get); Identity Platform has no
# resource-level IAM. The test below proves it is granted to HTTP functions and nobody else.
HTTP_ONLY_PROJECT_ROLE = "roles/firebaseauth.viewer"
# Another, for the functions whose manifest entry needs "identity-admin" (NEEDS in their main.py: the
# User Management API's) and nobody else: they create Identity Platform tenants (identityplatform.admin)
# and users, set custom claims, revoke tokens and disable users (firebaseauth.admin). Identity Platform
# has no resource-level IAM (no per-tenant or per-user binding), so project level is the narrowest scope.
IDENTITY_ADMIN = "identity-admin"
IDENTITY_ADMIN_PROJECT_ROLES = {"roles/identityplatform.admin", "roles/firebaseauth.admin"}
# And for the functions whose manifest entry needs "webhook-secrets" (the Integration and Workflow APIs'):
# Secret Manager on the signing secrets they create at run time, which no per-secret grant can name.
# Project level, but each grant carries an IAM condition on the API's own secret name prefix: a custom
# role (create, add versions, read, delete; no setIamPolicy) for the HTTP function, accessor for the
# tasks function (read versions to sign).
WEBHOOK_SECRETS = "webhook-secrets"
RUNTIME_SECRETS_ROLE = "${google_project_iam_custom_role.runtime_secrets.name}"
WEBHOOK_SECRETS_GRANTS = {
    "runtime_secrets_manager": (RUNTIME_SECRETS_ROLE, "http"),
    "runtime_secrets_accessor": ("roles/secretmanager.secretAccessor", "tasks"),
}
WEBHOOK_SECRETS_CONDITION = (
    'resource.name.startsWith("projects/${var.project_number}/secrets/${each.value.secret_prefix}")'
)
# Project-level grants of the bootstrap stage: the deployer's roles (checked in test_bootstrap.py).
BOOTSTRAP = TF / "bootstrap"


MODULES = ("pubsub", "functions", "firestore", "tasks", "secrets", "iam", "gke", "edge")


def tf_files() -> list[Path]:
    return sorted(p for p in TF.rglob("*.tf") if not SKIP_DIRS.intersection(p.parts))


def tfvars_files() -> list[Path]:
    return sorted(p for p in TF.rglob("*.tfvars") if not SKIP_DIRS.intersection(p.parts))


# --------------------------------------------------------------------------------------------------------
# python-hcl2 helpers: names and strings come back quoted in 7+, values wrapped in lists in older versions
# --------------------------------------------------------------------------------------------------------


def unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def scalar(value: Any) -> Any:
    """An attribute's value: unwrapped from one-element lists, strings without their quotes."""
    while isinstance(value, list) and len(value) == 1 and not isinstance(value[0], dict):
        value = value[0]
    return unquote(value) if isinstance(value, str) else value


def blocks(value: Any) -> list[dict[str, Any]]:
    """A nested block's bodies, whether hcl2 returns a dict or a list of dicts."""
    if isinstance(value, dict):
        return [value]
    return [b for b in value if isinstance(b, dict)] if isinstance(value, list) else []


def expression(value: Any) -> str:
    """An expression attribute without its "${...}" wrapper."""
    text = str(scalar(value))
    return text[2:-1] if text.startswith("${") and text.endswith("}") else text


@cache
def parsed(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = hcl2.load(handle)
    return document


def labelled(path: Path, kind: str) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """(labels, body) of every top-level block of a kind: resource, data, module, variable, output."""

    def walk(node: Any, labels: list[str]) -> Iterator[tuple[list[str], dict[str, Any]]]:
        for item in blocks(node):
            if item.get("__is_block__") or not any(not k.startswith("__") for k in item):
                yield labels, item
                continue
            keys = [k for k in item if not k.startswith("__")]
            if all(isinstance(item[k], dict | list) for k in keys) and len(labels) < depth:
                for key in keys:
                    yield from walk(item[key], [*labels, unquote(key)])
            else:
                yield labels, item

    depth = {"resource": 2, "data": 2}.get(kind, 1)
    yield from walk(parsed(path).get(kind, []), [])


def resources(kind: str = "resource") -> Iterator[tuple[Path, str, str, dict[str, Any]]]:
    for path in tf_files():
        for labels, body in labelled(path, kind):
            yield path, labels[0], labels[1], body


def module_resource(module: str, rtype: str, name: str) -> dict[str, Any]:
    for path, found_type, found_name, body in resources():
        if path.parent == TF / "modules" / module and (found_type, found_name) == (rtype, name):
            return body
    raise AssertionError(f"modules/{module} has no {rtype}.{name}")


def module_call(module: str) -> dict[str, Any]:
    for path in tf_files():
        if path.parent != TF:
            continue
        for _labels, body in labelled(path, "module"):
            if scalar(body.get("source")) == f"./modules/{module}":
                return body
    raise AssertionError(f"the root configuration does not call modules/{module}")


def root_locals() -> dict[str, str]:
    found: dict[str, str] = {}
    for item in blocks(parsed(TF / "locals.tf").get("locals", [])):
        found.update({k: expression(v) for k, v in item.items() if not k.startswith("__")})
    return found


# --------------------------------------------------------------------------------------------------------
# Evaluating terraform/locals.tf with Terraform itself
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<tmp>/terraform/{locals.tf,variables.tf,workloads.auto.tfvars}, <tmp>/schemas, <tmp>/build."""
    base = tmp_path_factory.mktemp("tf")
    (base / "terraform").mkdir()
    for name in ("locals.tf", "variables.tf", "workloads.auto.tfvars"):
        shutil.copy2(TF / name, base / "terraform" / name)
    (base / "schemas").symlink_to(ROOT / "schemas", target_is_directory=True)
    build(base / "build")
    return base


@pytest.fixture(scope="module")
def manifest(workspace: Path) -> list[ManifestEntry]:
    entries: list[ManifestEntry] = json.loads((workspace / "build" / "manifest.json").read_text())
    return entries


def console(
    workspace: Path, expressions: dict[str, str], *args: str, cwd: str = "terraform"
) -> dict[str, Any]:
    assert TERRAFORM is not None
    expr = "base64encode(jsonencode({" + ", ".join(f"{k} = {v}" for k, v in expressions.items()) + "}))"
    run = subprocess.run(
        [TERRAFORM, "console", *args],
        cwd=workspace / cwd,
        input=expr + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, f"terraform console failed:\n{run.stderr}"
    line = next(line for line in run.stdout.splitlines() if line.startswith('"'))
    evaluated: dict[str, Any] = json.loads(base64.b64decode(json.loads(line)))
    return evaluated


LOCALS = (
    "dead_letter_subscriptions",
    "dead_letter_topics",
    "firestore_fields",
    "firestore_indexes",
    "function_callers",
    "function_emails",
    "function_env",
    "functions",
    "partner_subscribers",
    "partner_subscriptions",
    "push_subscriptions",
    "queue_enqueuers",
    "queues",
    "secret_accessors",
    "skipped_subscribers",
    "tasks_act_as",
    "topic_publishers",
    "topics",
    "workload_subscriptions",
    "workload_topics",
    "workloads",
)


@pytest.fixture(scope="module")
def evaluated(workspace: Path) -> dict[str, Any]:
    if TERRAFORM is None:
        pytest.skip("terraform is not on PATH")
    return console(
        workspace,
        {name: f"local.{name}" for name in LOCALS},
        f"-var-file={TF / 'environments' / 'dev.tfvars'}",
        f"-var=project_id={PROJECT}",
        f"-var=region={REGION}",
        f"-var=billing_account={BILLING}",
        f'-var=partner_members={{"analytics-query-api" = ["{PARTNER_READER}"]}}',
        f'-var=secrets={{"{SECRET}" = {{ accessors = ["tenant_api"] }}}}',
    )


@pytest.fixture(scope="module")
def settings() -> Settings:
    # Only what Terraform sets counts: CMP_* variables of this process (a local suite started by other
    # tests in the same session exports some) must not leak in.
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("CMP_")]:
            patch.delenv(name)
        return Settings(project_id=PROJECT, location=REGION, environment="dev")


@pytest.fixture(scope="module")
def provisioned(catalog: Catalog) -> tuple[Provisioned, dict[str, dict[str, Any]], dict[str, Any]]:
    """What emulators/provision.py creates, run against recording fakes of the Pub/Sub and Tasks clients."""
    from google.cloud import pubsub_v1

    subscriptions: dict[str, dict[str, Any]] = {}
    queues: dict[str, Any] = {}

    class Publisher:
        def topic_path(self, project: str, name: str) -> str:
            return f"projects/{project}/topics/{name}"

        def create_topic(self, name: str) -> None:
            pass

    class Subscriber:
        def subscription_path(self, project: str, name: str) -> str:
            return f"projects/{project}/subscriptions/{name}"

        def create_subscription(self, request: dict[str, Any]) -> None:
            subscriptions[str(request["name"]).rsplit("/", 1)[1]] = request

    class Tasks:
        def create_queue(self, parent: str, queue: Any) -> None:
            queues[queue.name.rsplit("/", 1)[1]] = queue

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pubsub_v1, "PublisherClient", Publisher)
        patch.setattr(pubsub_v1, "SubscriberClient", Subscriber)
        patch.setattr("shared.clients.tasks_client", Tasks)
        report = provision(catalog, PROJECT, "http://127.0.0.1:1", "k" * 32, location=REGION)
    return report, subscriptions, queues


# --------------------------------------------------------------------------------------------------------
# Formatting and layout
# --------------------------------------------------------------------------------------------------------


@needs_terraform
def test_terraform_fmt_is_clean() -> None:
    assert TERRAFORM is not None
    run = subprocess.run(
        [TERRAFORM, "fmt", "-check", "-recursive", "-diff", str(TF)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{run.stdout}"


def test_modules_by_concern_and_root_files() -> None:
    for module in MODULES:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (TF / "modules" / module / name).is_file(), f"modules/{module}/{name}"
        module_call(module)
    for env in ENVIRONMENTS:
        assert (TF / "environments" / f"{env}.tfvars").is_file()
        backend = (TF / "environments" / f"{env}.gcs.tfbackend").read_text()
        assert re.search(r"^bucket\s*=", backend, re.M) and re.search(
            rf'^prefix\s*=\s*"cmp/{env}"', backend, re.M
        )
    assert (TF / "README.md").is_file()


def test_versions_and_partial_gcs_backend() -> None:
    (terraform,) = blocks(parsed(TF / "versions.tf")["terraform"])
    assert scalar(terraform["required_version"]) == ">= 1.6"
    (providers,) = blocks(terraform["required_providers"])
    assert scalar(providers["google"])["version"] in ("~> 6.0", '"~> 6.0"')
    assert scalar(providers["archive"])["version"] in ("~> 2.4", '"~> 2.4"')
    (backend,) = blocks(terraform["backend"])
    gcs = backend.get("gcs", backend.get('"gcs"'))
    assert gcs is not None and not [k for k in scalar(gcs) if not k.startswith("__")], (
        "backend gcs {} stays partial"
    )


def test_variables_and_outputs_are_alphabetical() -> None:
    for path in tf_files():
        text = path.read_text(encoding="utf-8")
        for kind in ("variable", "output"):
            names = re.findall(rf'^{kind} "([^"]+)"', text, re.M)
            assert names == sorted(names), f"{path.relative_to(ROOT)}: {kind}s out of order: {names}"


# --------------------------------------------------------------------------------------------------------
# Names: the locals, evaluated, against shared/catalog.py and emulators/provision.py
# --------------------------------------------------------------------------------------------------------


def test_locals_spell_the_catalog_naming_rules() -> None:
    """The formats of shared/catalog.py appear verbatim in the locals' expressions."""
    found = root_locals()
    assert "${e.topic}--${api.slug}" in found["push_subscriptions"]
    assert "${api.module}_events" in found["push_subscriptions"]
    assert "${api.slug}--dead-letter" in found["push_subscriptions"]
    assert "${e.topic}--${partner.slug}" in found["partner_subscriptions"]
    assert "${api.slug}--dead-letter" in found["dead_letter_topics"]
    assert "${api.slug}--dead-letter--inspect" in found["dead_letter_subscriptions"]
    assert "local.catalog.events" in found["topics"]
    for name in ("catalog", "manifest", "firestore_spec"):
        assert found[name].startswith("jsondecode(file("), name
    # locals.tf must stay evaluable offline: no resource, data source or module in it.
    text = (TF / "locals.tf").read_text(encoding="utf-8")
    assert not re.search(r"\b(module|data|google_[a-z0-9_]+)\.[a-z]", text)


def test_topics_dead_letters_and_subscriptions_match_the_catalog(
    evaluated: dict[str, Any], catalog: Catalog, manifest: list[ManifestEntry], settings: Settings
) -> None:
    built = {f["name"] for f in manifest}
    assert set(evaluated["topics"]) == {e.topic for e in catalog.events}
    for event in catalog.events:
        topic = evaluated["topics"][event.topic]
        assert topic["schema_uri"] == catalog.schema_uri(event)
        assert topic["labels"]["event"] == event.slug
    assert set(evaluated["dead_letter_topics"]) == {a.dead_letter_topic for a in catalog.apis}
    assert {k: v["topic"] for k, v in evaluated["dead_letter_subscriptions"].items()} == {
        a.dead_letter_subscription: a.dead_letter_topic for a in catalog.apis
    }

    push = evaluated["push_subscriptions"]
    expected: dict[str, dict[str, str]] = {}
    for event in catalog.events:
        for api in (catalog.api(name) for name in event.subscribers):
            if api.events_function in built:
                expected[event.push_subscription(api)] = {
                    "api": api.name,
                    "audience": settings.function_url(api.events_function),
                    "dead_letter_topic": api.dead_letter_topic,
                    "function": api.events_function,
                    "topic": event.topic,
                }
    assert push == expected
    assert expected, "at least one API has an events function"
    partners = {p.name: p for p in catalog.partners}
    assert evaluated["partner_subscriptions"] == {
        e.partner_subscription(partners[name]): {"partner": partners[name].slug, "topic": e.topic}
        for e in catalog.events
        for name in e.partner_subscribers
    }


def test_the_same_names_as_the_local_suite(
    evaluated: dict[str, Any],
    provisioned: tuple[Provisioned, dict[str, dict[str, Any]], dict[str, Any]],
    manifest: list[ManifestEntry],
) -> None:
    """Terraform creates in a project exactly what emulators/provision.py creates on the emulators."""
    report, subscriptions, queues = provisioned
    assert set(report.topics) == set(evaluated["topics"]) | set(evaluated["dead_letter_topics"])
    assert set(report.push_subscriptions) == set(evaluated["push_subscriptions"])
    assert set(report.pull_subscriptions) == set(evaluated["partner_subscriptions"]) | set(
        evaluated["dead_letter_subscriptions"]
    )
    assert sorted(report.skipped_apis) == evaluated["skipped_subscribers"]
    assert set(report.queues) == set(evaluated["queues"])
    for name, queue in evaluated["queues"].items():
        local = queues[name]
        retry = local.retry_config
        assert queue["max_attempts"] == retry.max_attempts
        assert queue["max_doublings"] == retry.max_doublings
        assert float(queue["min_backoff"].removesuffix("s")) == pytest.approx(
            retry.min_backoff.total_seconds()
        )
        assert float(queue["max_backoff"].removesuffix("s")) == pytest.approx(
            retry.max_backoff.total_seconds()
        )
        assert queue["max_dispatches_per_second"] == local.rate_limits.max_dispatches_per_second
        assert queue["max_concurrent_dispatches"] == local.rate_limits.max_concurrent_dispatches
        assert queue["target_function"] in {f["name"] for f in manifest}

    # The push subscription settings of modules/pubsub are those of the local suite.
    body = module_resource("pubsub", "google_pubsub_subscription", "push")
    a_push = subscriptions[next(iter(evaluated["push_subscriptions"]))]
    assert scalar(body["ack_deadline_seconds"]) == a_push["ack_deadline_seconds"] == 60
    assert scalar(body["enable_message_ordering"]) is a_push["enable_message_ordering"] is True
    (retry,) = blocks(body["retry_policy"])
    assert scalar(retry["minimum_backoff"]) == f"{a_push['retry_policy']['minimum_backoff'].seconds}s" == "1s"
    assert (
        scalar(retry["maximum_backoff"]) == f"{a_push['retry_policy']['maximum_backoff'].seconds}s" == "60s"
    )
    (dead_letter,) = blocks(body["dead_letter_policy"])
    assert (
        expression(dead_letter["max_delivery_attempts"])
        == f"var.max_delivery_attempts + {BACKSTOP_EXTRA_ATTEMPTS}"
    )
    assert "google_pubsub_topic.dead_letter[each.value.dead_letter_topic]" in expression(
        dead_letter["dead_letter_topic"]
    )
    (push_config,) = blocks(body["push_config"])
    (oidc,) = blocks(push_config["oidc_token"])
    assert expression(oidc["service_account_email"]) == "var.push_invoker_email"
    assert expression(oidc["audience"]) == "each.value.audience"
    assert expression(push_config["push_endpoint"]) == "var.function_urls[each.value.function]"


def test_catalog_driven_resources_iterate_over_the_derived_locals(evaluated: dict[str, Any]) -> None:
    """resource for_each = var.X (module) <- X = local.Y (root) <- Y evaluated above from the files."""
    chain = {
        ("pubsub", "google_pubsub_topic", "event"): ("topics", "topics"),
        ("pubsub", "google_pubsub_topic", "dead_letter"): ("dead_letter_topics", "dead_letter_topics"),
        ("pubsub", "google_pubsub_subscription", "dead_letter"): (
            "dead_letter_subscriptions",
            "dead_letter_subscriptions",
        ),
        ("pubsub", "google_pubsub_subscription", "push"): ("push_subscriptions", "push_subscriptions"),
        ("pubsub", "google_pubsub_subscription", "partner"): (
            "partner_subscriptions",
            "partner_subscriptions",
        ),
        ("pubsub", "google_pubsub_subscription_iam_member", "service_agent_source"): (
            "push_subscriptions",
            "push_subscriptions",
        ),
        ("functions", "google_cloudfunctions2_function", "function"): ("functions", "functions"),
        ("functions", "google_storage_bucket_object", "source"): ("functions", "functions"),
        ("iam", "google_service_account", "function"): ("functions", "functions"),
        ("iam", "google_project_iam_member", "function_datastore"): ("functions", "functions"),
        ("tasks", "google_cloud_tasks_queue", "queue"): ("queues", "queues"),
        ("firestore", "google_firestore_index", "composite"): ("indexes", "firestore_indexes"),
        ("firestore", "google_firestore_field", "field"): ("fields", "firestore_fields"),
    }
    for (module, rtype, name), (variable, local) in chain.items():
        body = module_resource(module, rtype, name)
        assert expression(body["for_each"]) == f"var.{variable}", f"{module}: {rtype}.{name}"
        assert expression(module_call(module)[variable]) == f"local.{local}", f"module {module}: {variable}"
        assert evaluated[local], f"local.{local} is empty"
    data_source = next(body for _, t, n, body in resources("data") if (t, n) == ("archive_file", "source"))
    assert expression(data_source["for_each"]) == "var.functions"
    jobs = module_resource("functions", "google_cloud_scheduler_job", "job")
    assert expression(jobs["for_each"]) == "local.scheduled"
    functions_locals = "".join(
        str(v) for item in blocks(parsed(TF / "modules/functions/main.tf")["locals"]) for v in item.values()
    )
    assert "for name, f in var.functions" in functions_locals and "f.schedule != null" in functions_locals


def test_no_catalog_or_manifest_name_is_written_in_terraform(
    catalog: Catalog, manifest: list[ManifestEntry]
) -> None:
    names = {e.topic for e in catalog.events} | {e.name for e in catalog.events}
    names |= {e.push_subscription(catalog.api(n)) for e in catalog.events for n in e.subscribers}
    partners = {p.name: p for p in catalog.partners}
    names |= {e.partner_subscription(partners[n]) for e in catalog.events for n in e.partner_subscribers}
    for api in catalog.apis:
        names |= {api.name, api.slug, api.module, api.events_function, api.dead_letter_topic}
        names |= {api.dead_letter_subscription}
    names |= {p.name for p in catalog.partners} | {p.slug for p in catalog.partners}
    names |= {q.name for q in catalog.queues} | {q.target_function for q in catalog.queues}
    names |= {f["name"] for f in manifest}
    for path in tf_files():
        text = path.read_text(encoding="utf-8")
        for name in names:
            hit = re.search(rf"(?<![A-Za-z0-9_-]){re.escape(name)}(?![A-Za-z0-9_-])", text)
            assert hit is None, (
                f"{path.relative_to(ROOT)} writes {name!r} by hand: derive it from the catalog"
            )


# --------------------------------------------------------------------------------------------------------
# Functions: manifest, service accounts, settings, invokers
# --------------------------------------------------------------------------------------------------------


def test_every_manifest_function_is_deployed_with_its_trigger(
    evaluated: dict[str, Any], manifest: list[ManifestEntry], settings: Settings
) -> None:
    functions = evaluated["functions"]
    assert set(functions) == {f["name"] for f in manifest}
    for entry in manifest:
        f = functions[entry["name"]]
        kind, _, cron = entry["trigger"].partition(":")
        assert (f["kind"], f["schedule"]) == (kind, cron or None)
        assert f["entry_point"] == entry["entry_point"]
        assert f["sha256"] == entry["sha256"]
        assert f["source_dir"].endswith(f"/build/{entry['source_dir']}")
        assert f["url"] == settings.function_url(entry["name"])
        assert f["public"] is (kind == "http")
        if kind in ("pubsub-push", "scheduler"):
            assert f["invokers"] == [{"pubsub-push": "push", "scheduler": "scheduler"}[kind]]
        elif kind == "tasks":
            assert f["invokers"] == [
                f"queue:{q}"
                for q, spec in evaluated["queues"].items()
                if spec["target_function"] == entry["name"]
            ]
        else:
            assert f["invokers"] == []
        # The dev tfvars have a load balancer: APIs take its traffic, everything else internal only.
        assert f["ingress"] == ("ALLOW_INTERNAL_AND_GCLB" if kind == "http" else "ALLOW_INTERNAL_ONLY")
    kinds = {f["kind"] for f in functions.values()}
    assert kinds == {"http", "pubsub-push", "tasks", "scheduler"}, "the manifest exercises every trigger"


def test_source_objects_are_named_by_content_hash() -> None:
    obj = module_resource("functions", "google_storage_bucket_object", "source")
    assert scalar(obj["name"]) == "${each.key}-${each.value.sha256}.zip"
    fn = module_resource("functions", "google_cloudfunctions2_function", "function")
    (build_config,) = blocks(fn["build_config"])
    assert scalar(build_config["runtime"]) == "python311"
    assert expression(build_config["entry_point"]) == "each.value.entry_point"
    (service_config,) = blocks(fn["service_config"])
    assert expression(service_config["service_account_email"]) == "var.service_accounts[each.key]"
    assert expression(service_config["environment_variables"]) == "var.environment_variables[each.key]"
    assert expression(module_call("functions")["service_accounts"]) == "module.iam.function_emails"
    assert expression(module_call("functions")["environment_variables"]) == "local.function_env"
    for path in [*tf_files(), *tfvars_files()]:
        assert "timestamp(" not in path.read_text(encoding="utf-8"), path


def test_one_service_account_per_function(evaluated: dict[str, Any]) -> None:
    body = module_resource("iam", "google_service_account", "function")
    assert expression(body["for_each"]) == "var.functions"
    assert expression(body["account_id"]) == "each.value.account_id"
    ids = [f["account_id"] for f in evaluated["functions"].values()]
    assert len(ids) == len(set(ids))
    invokers = {"pubsub-push", "cloud-scheduler"} | {f"tasks-{q}" for q in evaluated["queues"]}
    for account_id in ids:
        assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account_id), account_id
        assert account_id not in invokers


def test_cmp_settings_parse_in_the_real_settings(
    evaluated: dict[str, Any], monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    """Every function's CMP_* variables, read by shared/config.py as the function would read them."""
    invoker_of = {
        "pubsub-push": f"pubsub-push@{PROJECT}.iam.gserviceaccount.com",
        "scheduler": f"cloud-scheduler@{PROJECT}.iam.gserviceaccount.com",
    }
    for name, env in evaluated["function_env"].items():
        kind = evaluated["functions"][name]["kind"]
        package = evaluated["functions"][name]["package"]
        # Tasks are signed as the invoker of the package's own queue; a package without one keeps the
        # default (it creates no task).
        functions = evaluated["functions"]
        (queue,) = [
            q
            for q, spec in evaluated["queues"].items()
            if functions[spec["target_function"]]["package"] == package
        ] or [None]
        tasks_account = (
            f"tasks-{queue}@{PROJECT}.iam.gserviceaccount.com"
            if queue
            else f"cloud-tasks@{PROJECT}.iam.gserviceaccount.com"
        )
        with monkeypatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("CMP_")]:
                patch.delenv(key)
            for key, value in env.items():
                patch.setenv(key, value)
            parsed_settings = Settings()
        assert parsed_settings.project_id == PROJECT
        assert parsed_settings.location == REGION
        assert parsed_settings.environment == "dev"
        assert parsed_settings.service_auth == "oidc"
        assert parsed_settings.max_delivery_attempts == 5
        assert parsed_settings.function_url(name) == settings.function_url(name)
        assert parsed_settings.tasks_account == tasks_account
        if "smtp-relay" in evaluated["functions"][name]["needs"]:  # the dev tfvars' relay, no password
            assert (parsed_settings.smtp_host, parsed_settings.smtp_port) == ("smtp.sendgrid.net", 587)
            assert parsed_settings.smtp_starttls is True and parsed_settings.smtp_username == "apikey"
        else:
            assert not any(key.startswith("CMP_SMTP_") for key in env), name
        if kind == "http":
            assert "CMP_SERVICE_INVOKERS" not in env
            if name in evaluated["function_callers"]:
                # Service callers' tokens are minted for settings.function_url(callee) (shared/services.py).
                assert parsed_settings.service_audience == settings.function_url(name)
                assert parsed_settings.service_callers == tuple(evaluated["function_callers"][name])
            else:  # no caller: no service token is accepted (shared/auth.py CallerAuthenticator)
                assert "CMP_SERVICE_CALLERS" not in env and "CMP_SERVICE_AUDIENCE" not in env
                assert parsed_settings.service_callers == ()
        elif kind == "tasks":
            # Cloud Tasks signs as the queue's invoker, the account shared/tasks.py names: its target
            # accepts that one account.
            assert "CMP_SERVICE_CALLERS" not in env
            assert parsed_settings.service_invokers == (parsed_settings.tasks_account,)
            assert parsed_settings.service_audience == settings.function_url(name)
        else:
            assert "CMP_SERVICE_CALLERS" not in env
            assert parsed_settings.service_invokers == (invoker_of[kind],)
            assert parsed_settings.service_audience == settings.function_url(name)


def test_service_callers_are_exactly_the_manifests_calls(
    evaluated: dict[str, Any], manifest: list[ManifestEntry]
) -> None:
    """An HTTP API lets in exactly the service accounts of the functions whose manifest entry calls it."""
    emails = evaluated["function_emails"]
    functions = evaluated["functions"]
    assert set(emails) == set(functions)
    for name, f in functions.items():
        assert emails[name] == f"{f['account_id']}@{PROJECT}.iam.gserviceaccount.com"
    expected: dict[str, list[str]] = {}
    for entry in manifest:
        assert functions[entry["name"]]["calls"] == entry["calls"]
        assert functions[entry["name"]]["needs"] == entry["needs"]
        for callee in entry["calls"]:
            expected.setdefault(callee, []).append(emails[entry["name"]])
    assert evaluated["function_callers"] == {callee: sorted(found) for callee, found in expected.items()}
    assert all(functions[callee]["kind"] == "http" for callee in evaluated["function_callers"])
    for name, f in functions.items():
        if f["kind"] == "http" and name not in expected:
            assert "CMP_SERVICE_CALLERS" not in evaluated["function_env"][name], name


def test_user_management_calls_the_tenant_api_when_the_manifest_says_so(
    evaluated: dict[str, Any], manifest: list[ManifestEntry]
) -> None:
    """The case the platform depends on: User Management takes and releases the Tenant API's seats
    (functions/user_management_api/adapters.py SeatPool), so the Tenant API must let its accounts in."""
    emails = evaluated["function_emails"]
    user_management = {
        emails[e["name"]]
        for e in manifest
        if e["package"] == "user_management_api" and "tenant_api" in e["calls"]
    }
    if not user_management:
        pytest.skip("no User Management function declares a call to the Tenant API")
    env = evaluated["function_env"]["tenant_api"]
    callers = json.loads(env["CMP_SERVICE_CALLERS"])
    assert callers == sorted(emails[e["name"]] for e in manifest if "tenant_api" in e["calls"])
    assert user_management <= set(callers)
    assert env["CMP_SERVICE_AUDIENCE"] == f"https://{REGION}-{PROJECT}.cloudfunctions.net/tenant_api"


def test_identity_admin_roles_go_to_the_functions_that_need_them(
    evaluated: dict[str, Any], manifest: list[ManifestEntry]
) -> None:
    """Both roles iterate over the functions whose needs contain "identity-admin", and nothing else."""
    for name in ("identity_platform_admin", "firebaseauth_admin"):
        body = module_resource("iam", "google_project_iam_member", name)
        assert expression(body["for_each"]).replace(" ", "") == (
            f'{{forname,finvar.functions:name=>fifcontains(f.needs,"{IDENTITY_ADMIN}")}}'
        ), name
        assert scalar(body["member"]) == "serviceAccount:${google_service_account.function[each.key].email}"
    assert {
        scalar(module_resource("iam", "google_project_iam_member", n)["role"])
        for n in ("identity_platform_admin", "firebaseauth_admin")
    } == IDENTITY_ADMIN_PROJECT_ROLES
    assert expression(module_call("iam")["functions"]) == "local.functions"
    admins = {n for n, f in evaluated["functions"].items() if IDENTITY_ADMIN in f["needs"]}
    assert admins == {e["name"] for e in manifest if IDENTITY_ADMIN in e["needs"]}
    # Project-wide identity administration is a strong grant: today only the User Management functions
    # (IdP tenants and users, claims resync) and the Tenant API's offboarding task (revokes the users'
    # sessions, deletes the IdP tenant at erasure) hold it; a new holder is a deliberate change of this test.
    assert admins <= {e["name"] for e in manifest if e["package"] == "user_management_api"} | {
        "tenant_api_tasks"
    }


def webhook_secrets_for_each(kind: str) -> str:
    return f'{{forname,finvar.functions:name=>fifcontains(f.needs,"{WEBHOOK_SECRETS}")&&f.kind=="{kind}"}}'


def webhook_secrets_condition(body: dict[str, Any]) -> str:
    """The grant's IAM condition expression, unescaped."""
    (condition,) = blocks(body.get("condition", []))
    return str(scalar(condition["expression"])).replace('\\"', '"')


def test_webhook_secrets_grants_go_to_the_functions_that_need_them(
    evaluated: dict[str, Any], manifest: list[ManifestEntry]
) -> None:
    """The custom role to the HTTP, accessor to the tasks functions needing "webhook-secrets", each
    conditioned on their own API's secret name prefix; nothing else."""
    for name, (role, kind) in WEBHOOK_SECRETS_GRANTS.items():
        body = module_resource("iam", "google_project_iam_member", name)
        assert expression(body["for_each"]).replace(" ", "") == webhook_secrets_for_each(kind), name
        assert scalar(body["role"]) == role
        assert scalar(body["member"]) == "serviceAccount:${google_service_account.function[each.key].email}"
        assert webhook_secrets_condition(body) == WEBHOOK_SECRETS_CONDITION, name
    assert expression(module_call("iam")["project_number"]) == "data.google_project.this.number"
    holders = {n: f["kind"] for n, f in evaluated["functions"].items() if WEBHOOK_SECRETS in f["needs"]}
    assert set(holders) == {e["name"] for e in manifest if WEBHOOK_SECRETS in e["needs"]}
    assert set(holders.values()) <= {"http", "tasks"}  # any other kind would get nothing
    # Today the Integration and Workflow APIs' HTTP (create, rotate) and tasks (sign) functions, not
    # their events functions (fan-out and matching only).
    assert holders == {
        "integration_api": "http",
        "integration_api_tasks": "tasks",
        "workflow_api": "http",
        "workflow_api_tasks": "tasks",
    }


def test_run_invoker_per_trigger() -> None:
    public = module_resource("functions", "google_cloud_run_v2_service_iam_member", "public")
    assert expression(public["for_each"]) == "local.public" and scalar(public["member"]) == "allUsers"
    private = module_resource("functions", "google_cloud_run_v2_service_iam_member", "invoker")
    assert expression(private["for_each"]) == "local.invocations"
    assert scalar(private["member"]) == "serviceAccount:${var.invoker_emails[each.value.invoker]}"
    for body in (public, private):
        assert scalar(body["role"]) == "roles/run.invoker"
    job = module_resource("functions", "google_cloud_scheduler_job", "job")
    (target,) = blocks(job["http_target"])
    (oidc,) = blocks(target["oidc_token"])
    assert expression(oidc["service_account_email"]) == 'var.invoker_emails["scheduler"]'
    assert expression(oidc["audience"]) == "each.value.url"
    assert expression(job["schedule"]) == "each.value.schedule"


# --------------------------------------------------------------------------------------------------------
# Least privilege
# --------------------------------------------------------------------------------------------------------


def test_topic_publishers_are_exactly_each_functions_api_topics(
    evaluated: dict[str, Any], catalog: Catalog
) -> None:
    internal = {e.topic for e in catalog.events if e.publisher != EXTERNAL}
    granted: dict[str, set[str]] = {}
    for binding in evaluated["topic_publishers"].values():
        granted.setdefault(binding["function"], set()).add(binding["topic"])
    for name, f in evaluated["functions"].items():
        if f["api"] is None:  # a kernel service function (the outbox relay) republishes any API's events
            expected = set() if f["public"] else internal
        else:
            api = catalog.api(f["api"])
            expected = {e.topic for e in catalog.published_by(api.name)}
            if f["kind"] == "pubsub-push":
                expected |= {api.dead_letter_topic}
        assert granted.get(name, set()) == expected, name
    assert all(
        t not in {e.topic for e in catalog.events if e.is_external} for g in granted.values() for t in g
    )


def test_queues_secrets_and_partners_are_granted_resource_by_resource(
    evaluated: dict[str, Any], catalog: Catalog
) -> None:
    functions = evaluated["functions"]
    for queue in catalog.queues:
        package = functions[queue.target_function]["package"]
        enqueuers = {b["function"] for b in evaluated["queue_enqueuers"].values() if b["queue"] == queue.name}
        assert enqueuers == {n for n, f in functions.items() if f["package"] == package}
    assert evaluated["tasks_act_as"] == {
        key: {"function": b["function"], "invoker": f"queue:{b['queue']}"}
        for key, b in evaluated["queue_enqueuers"].items()
    }
    assert evaluated["secret_accessors"] == {
        f"tenant_api.{SECRET}": {"function": "tenant_api", "secret": SECRET}
    }

    analytics = next(p for p in catalog.partners if p.slug == "analytics-query-api")
    analytics_subscriptions = {
        e.partner_subscription(analytics) for e in catalog.events if analytics.name in e.partner_subscribers
    }
    assert {b["subscription"] for b in evaluated["partner_subscribers"].values()} == analytics_subscriptions
    assert {b["member"] for b in evaluated["partner_subscribers"].values()} == {PARTNER_READER}
    # The analytics pipeline on GKE reads those same subscriptions; the billing worker nothing yet.
    by_workload: dict[str, set[str]] = {}
    for binding in evaluated["workload_subscriptions"].values():
        by_workload.setdefault(binding["workload"], set()).add(binding["subscription"])
    assert by_workload == {"analytics-pipeline": analytics_subscriptions}
    assert set(evaluated["workloads"]) == {"analytics-pipeline", "billing-worker", "outbox-relay"}
    # The outbox relay worker republishes any API's events, like the outbox_relay function.
    topics_by_workload: dict[str, set[str]] = {}
    for binding in evaluated["workload_topics"].values():
        topics_by_workload.setdefault(binding["workload"], set()).add(binding["topic"])
    internal = {e.topic for e in catalog.events if e.publisher != EXTERNAL}
    assert topics_by_workload == {"outbox-relay": internal}


def iam_roles() -> Iterator[tuple[Path, str, str, dict[str, Any], str]]:
    for path, rtype, name, body in resources():
        if rtype.endswith(("_iam_member", "_iam_binding")):
            yield path, rtype, name, body, str(scalar(body.get("role", "")))


def test_no_primitive_roles_anywhere() -> None:
    for path in [*tf_files(), *tfvars_files()]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"roles/(owner|editor|viewer)\b", text), path
    for path, rtype, name, body, role in iam_roles():
        if path.parent == BOOTSTRAP and rtype == "google_project_iam_member":
            # the deployer's roles: a list evaluated in test_bootstrap.py
            assert expression(body["for_each"]) == "toset(local.deployer_roles)", f"{rtype}.{name}"
            continue
        if role == RUNTIME_SECRETS_ROLE:  # a custom role of the same module, checked below
            continue
        assert role.startswith("roles/") and "${" not in role, (
            f"{path}: {rtype}.{name} must name its role literally"
        )


def test_project_level_grants_come_from_the_allow_list() -> None:
    for path in tf_files():
        assert not re.search(r'resource "google_project_iam_(binding|policy)"', path.read_text()), (
            f"{path}: authoritative project IAM would strip other grants"
        )
    project_grants = [
        g for g in iam_roles() if g[1].startswith("google_project_iam_") and g[0].parent != BOOTSTRAP
    ]
    assert project_grants
    for path, rtype, name, body, role in project_grants:
        if role == HTTP_ONLY_PROJECT_ROLE:
            assert path.parent.name == "iam"
            assert expression(body["for_each"]).replace(" ", "") == (
                '{forname,finvar.functions:name=>fiff.kind=="http"}'
            ), f"{rtype}.{name}: {role} is for HTTP functions only"
            continue
        if role in IDENTITY_ADMIN_PROJECT_ROLES:
            assert path.parent.name == "iam"
            assert expression(body["for_each"]).replace(" ", "") == (
                f'{{forname,finvar.functions:name=>fifcontains(f.needs,"{IDENTITY_ADMIN}")}}'
            ), f"{rtype}.{name}: {role} is for functions that need {IDENTITY_ADMIN} only"
            continue
        if (name, role) in {(n, r) for n, (r, _) in WEBHOOK_SECRETS_GRANTS.items()}:
            assert path.parent.name == "iam" and rtype == "google_project_iam_member"
            assert expression(body["for_each"]).replace(" ", "") == webhook_secrets_for_each(
                WEBHOOK_SECRETS_GRANTS[name][1]
            ), f"{rtype}.{name}: {role} is for functions that need {WEBHOOK_SECRETS} only"
            assert webhook_secrets_condition(body) == WEBHOOK_SECRETS_CONDITION, (
                f"{rtype}.{name}: {role} must be conditioned to the webhook- secrets"
            )
            continue
        assert role in PROJECT_ROLES, f"{path.relative_to(ROOT)}: {rtype}.{name} grants {role} project-wide"
    assert not any(r in {"roles/pubsub.publisher", "roles/pubsub.subscriber"} for *_, r in project_grants)


def test_narrow_grants_sit_on_their_resources() -> None:
    expected = {
        ("pubsub", "google_pubsub_topic_iam_member", "publisher"): "roles/pubsub.publisher",
        ("pubsub", "google_pubsub_subscription_iam_member", "subscriber"): "roles/pubsub.subscriber",
        ("pubsub", "google_pubsub_topic_iam_member", "service_agent_dead_letter"): "roles/pubsub.publisher",
        (
            "pubsub",
            "google_pubsub_subscription_iam_member",
            "service_agent_source",
        ): "roles/pubsub.subscriber",
        ("tasks", "google_cloud_tasks_queue_iam_member", "enqueuer"): "roles/cloudtasks.enqueuer",
        (
            "secrets",
            "google_secret_manager_secret_iam_member",
            "accessor",
        ): "roles/secretmanager.secretAccessor",
        ("iam", "google_service_account_iam_member", "tasks_act_as"): "roles/iam.serviceAccountUser",
        ("gke", "google_service_account_iam_member", "workload_identity"): "roles/iam.workloadIdentityUser",
    }
    for (module, rtype, name), role in expected.items():
        assert scalar(module_resource(module, rtype, name)["role"]) == role
    identity = module_resource("gke", "google_service_account_iam_member", "workload_identity")
    assert scalar(identity["member"]) == (
        "serviceAccount:${var.project_id}.svc.id.goog[${each.value.namespace}/${each.value.ksa}]"
    )
    cluster = module_resource("gke", "google_container_cluster", "autopilot")
    assert scalar(cluster["enable_autopilot"]) is True
    (channel,) = blocks(cluster["release_channel"])
    assert scalar(channel["channel"]) == "REGULAR"
    (private,) = blocks(cluster["private_cluster_config"])
    assert scalar(private["enable_private_nodes"]) is True


def test_firestore_indexes_fields_and_ttl(evaluated: dict[str, Any]) -> None:
    spec = json.loads((ROOT / "schemas" / "firestore.indexes.json").read_text())
    indexes = evaluated["firestore_indexes"]
    assert len(indexes) == len(spec["indexes"])
    wanted = sorted(
        (
            ix["collectionGroup"],
            ix.get("queryScope", "COLLECTION"),
            [(f["fieldPath"], f.get("order") or f["arrayConfig"]) for f in ix["fields"]],
        )
        for ix in spec["indexes"]
    )
    got = sorted(
        (
            ix["collection"],
            ix["query_scope"],
            [(f["field_path"], f["order"] or f["array_config"]) for f in ix["fields"]],
        )
        for ix in indexes.values()
    )
    assert got == wanted
    assert "COLLECTION_GROUP" in {ix["query_scope"] for ix in indexes.values()}

    fields = evaluated["firestore_fields"]
    ttl = {f["collection"] for f in fields.values() if f["ttl"]}
    # The kernel's collections that write expire_at (shared/uow.py, intake.py, idempotency.py), and the
    # APIs' own, declared as TTL field overrides in the indexes file.
    declared = {o["collectionGroup"] for o in spec["fieldOverrides"] if o.get("ttl")}
    assert declared >= {"workflow_events", "workflow_hops"}
    assert ttl == {OUTBOX, PROCESSED, ATTEMPTS, IDEMPOTENCY} | declared
    assert {f["field"] for f in fields.values() if f["ttl"]} == {"expire_at"}
    for override in spec["fieldOverrides"]:
        assert fields[f"{override['collectionGroup']}/{override['fieldPath']}"]["indexes"] == []
    database = module_resource("firestore", "google_firestore_database", "default")
    assert scalar(database["type"]) == "FIRESTORE_NATIVE"
    assert "var.protect" in expression(database["point_in_time_recovery_enablement"])
    assert "var.protect" in expression(database["delete_protection_state"])
    assert expression(module_call("firestore")["protect"]) == 'var.environment == "prod"'


# Stub modules: each real module's variables.tf (so its types and validations apply) and just the
# outputs main.tf reads, with made-up values of the right type. No resources, so no provider: `terraform
# plan` runs offline and converts every argument main.tf passes, with the real values.
STUB_OUTPUTS = {
    "iam": """
output "function_emails" {
  value = {
    for name, f in var.functions : name => "${f.account_id}@${var.project_id}.iam.gserviceaccount.com"
  }
}
output "invoker_emails" {
  value = { for key, id in var.invokers : key => "${id}@stub.iam.gserviceaccount.com" }
}
""",
    "functions": """
output "urls" {
  value = { for name, f in var.functions : name => f.url }
}
""",
    "edge": """
output "address" {
  value = "203.0.113.10"
}
output "urls" {
  value = { for name in var.functions : name => "https://${var.domains[0]}/${name}" }
}
""",
    "gke": """
output "workload_emails" {
  value = { for name, w in var.workloads : name => "${name}@stub.iam.gserviceaccount.com" }
}
""",
}


@pytest.fixture(scope="module")
def stub_root(workspace: Path) -> Path:
    """<tmp>/stubroot: the root's main.tf, locals, variables and checks, calling stub modules."""
    assert TERRAFORM is not None
    root = workspace / "stubroot"
    root.mkdir()
    for name in ("locals.tf", "variables.tf", "checks.tf", "workloads.auto.tfvars"):
        shutil.copy2(TF / name, root / name)
    main = (TF / "main.tf").read_text(encoding="utf-8")
    stubbed, count = re.subn(r'data "google_project" "this" \{.*?\n\}\n', "", main, flags=re.S)
    assert count == 1
    stubbed = stubbed.replace("data.google_project.this.number", '"123456789012"')
    stubbed = re.sub(r"\n\s*depends_on = \[time_sleep\.apis_ready\]\n", "\n", stubbed)
    stubbed = stubbed.replace('source = "./modules/', 'source = "./stubs/')
    assert "google_" not in re.sub(r"#.*", "", stubbed.replace("google_project.this", "")), (
        "main.tf: only modules"
    )
    (root / "main.tf").write_text(stubbed, encoding="utf-8")
    for module in MODULES:
        (root / "stubs" / module).mkdir(parents=True)
        shutil.copy2(TF / "modules" / module / "variables.tf", root / "stubs" / module / "variables.tf")
        (root / "stubs" / module / "outputs.tf").write_text(STUB_OUTPUTS.get(module, ""), encoding="utf-8")
    init = subprocess.run(
        [TERRAFORM, "init", "-backend=false", "-input=false", "-no-color"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    return root


@needs_terraform
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_plans_against_the_module_interfaces(stub_root: Path, env: str) -> None:
    """main.tf's arguments, from each environment's tfvars, against every module's variable types and
    validations, and the plan-time checks of checks.tf: all evaluated by `terraform plan`."""
    assert TERRAFORM is not None
    run = subprocess.run(
        [
            TERRAFORM,
            "plan",
            "-input=false",
            "-no-color",
            "-lock=false",
            f"-var-file={TF / 'environments' / f'{env}.tfvars'}",
            f"-var=project_id={PROJECT}",
            f"-var=billing_account={BILLING}",
        ],
        cwd=stub_root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    failed = set(re.findall(r'in check "([a-z_]+)"', output))
    assert failed <= KNOWN_FAILING_CHECKS, output


# Checks that warn on today's manifest, each a known gap the check exists to keep visible (and that
# test_deploy.py pins as an expected failure): the User Management API's public function still
# administers Identity Platform itself.
KNOWN_FAILING_CHECKS = {"identity_admin_only_on_private_functions"}


# --------------------------------------------------------------------------------------------------------
# No secrets in the code
# --------------------------------------------------------------------------------------------------------


def test_no_secret_values_in_terraform() -> None:
    for path in [*tf_files(), *tfvars_files()]:
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        assert "secret_data" not in text, where
        assert "-----BEGIN" not in text, f"{where}: PEM material"
        assert not re.search(r"[A-Za-z0-9+/]{40,}={0,2}", text), f"{where}: a long base64-looking literal"
        assert not re.search(
            r'(?i)\b\w*(password|passwd|token|secret|api_key|apikey)\w*\s*=\s*"[^"$]+"', text
        ), f"{where}: a credential-looking literal"
    versions = [n for _, t, n, _ in resources() if t == "google_secret_manager_secret_version"]
    assert versions == [], "secret versions (and their values) stay out of Terraform"


def test_readme_documents_the_operations() -> None:
    readme = (TF / "README.md").read_text(encoding="utf-8")
    for needle in (
        "gcloud secrets versions add",
        "--data-file=-",
        "-backend-config",
        "project_id",
        "billing_account",
        "region",
        "kubectl",
        "AVRO",
        "make build",
    ):
        assert needle in readme, needle


# --------------------------------------------------------------------------------------------------------
# checkov
# --------------------------------------------------------------------------------------------------------


def test_checkov_skips_carry_a_reason() -> None:
    for path in tf_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            if "checkov:skip" in line:
                assert re.search(r"#checkov:skip=CKV2?_[A-Z]+_\d+:\s*\S.{10,}", line), (
                    f"{path}: {line.strip()}"
                )


def test_checkov_reports_no_failed_check() -> None:
    script = TF / "checkov.sh"
    run = subprocess.run([str(script)], capture_output=True, text=True, timeout=900, check=False)
    if run.returncode == 3:
        pytest.skip(f"checkov could not be installed: {run.stderr.strip()[-300:]}")
    assert run.returncode == 0, f"checkov found failed checks:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert re.search(r"Failed checks: 0\b", run.stdout), run.stdout[-2000:]
