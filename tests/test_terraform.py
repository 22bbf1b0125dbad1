"""Offline checks of terraform/: syntax and format, the provider's contract, and the wiring to the code.

The provider cannot be downloaded here, so `terraform validate` is out of reach. Instead every
resource, attribute and block the module writes is checked against a record of the provider's
documentation (tests/data/yandex_provider_contract.json, with the commit it was read from, and
VECTOR_INDEX_CONTRACT and MONITORING_CONTRACT below for the resources added since), and, when
../shared holds it, against the provider schema gathered for this product.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from embedding_pipeline.settings import Settings
from handlers.http.router import PREFIX_ROUTES, ROUTES

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "terraform"
CONTRACT = json.loads((Path(__file__).parent / "data" / "yandex_provider_contract.json").read_text())
SHARED_SCHEMA = ROOT.parent / "shared" / "reference" / "terraform" / "yandex-provider-schema.json"
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}
PRIMITIVE_ROLES = {"admin", "editor", "viewer", "resource-manager.admin", "resource-manager.editor"}
# Resources of HashiCorp's utility providers, from their documentation (random 3.6, time 0.12): the
# arguments this module may write. True means required.
UTILITY_CONTRACT: dict[str, dict[str, Any]] = {
    "random_password": {
        "attributes": {
            "length": True,
            "special": False,
            "upper": False,
            "lower": False,
            "numeric": False,
            "min_special": False,
            "override_special": False,
            "keepers": False,
        }
    },
    "time_sleep": {
        "attributes": {
            "create_duration": False,
            "destroy_duration": False,
            "triggers": False,
        }
    },
}
# Resources the vector index brought in after tests/data/yandex_provider_contract.json was recorded,
# read from the same documentation (docs/resources/<type>.md at the record's source_commit): the
# arguments this module may write. True means required. Checked against the shared schema below.
VECTOR_INDEX_CONTRACT: dict[str, dict[str, Any]] = {
    "yandex_vpc_network": {"attributes": {"name": False, "description": False, "folder_id": False}},
    "yandex_vpc_subnet": {
        "attributes": {
            "name": False,
            "description": False,
            "zone": False,
            "network_id": True,
            "v4_cidr_blocks": True,
        }
    },
    "yandex_vpc_security_group": {
        "attributes": {"name": False, "description": False, "network_id": True},
        "blocks": {
            "ingress": {
                "attributes": {
                    "description": False,
                    "protocol": True,
                    "port": False,
                    "v4_cidr_blocks": False,
                }
            }
        },
    },
    "yandex_mdb_postgresql_cluster": {
        "attributes": {
            "name": True,
            "description": False,
            "environment": True,
            "network_id": True,
            "security_group_ids": False,
            "deletion_protection": False,
        },
        "blocks": {
            "config": {
                "attributes": {"version": True},
                "blocks": {
                    "resources": {
                        "attributes": {
                            "resource_preset_id": True,
                            "disk_type_id": False,
                            "disk_size": True,
                        }
                    },
                    "access": {
                        "attributes": {
                            "data_lens": False,
                            "data_transfer": False,
                            "serverless": False,
                            "web_sql": False,
                        }
                    },
                },
            },
            "host": {"attributes": {"zone": True, "subnet_id": False, "assign_public_ip": False}},
        },
    },
    "yandex_mdb_postgresql_database": {
        "attributes": {
            "cluster_id": True,
            "name": True,
            "owner": True,
            "lc_collate": False,
            "lc_type": False,
        },
        "blocks": {"extension": {"attributes": {"name": True}}},
    },
    "yandex_mdb_postgresql_user": {
        "attributes": {
            "cluster_id": True,
            "name": True,
            "password": False,
            "conn_limit": False,
            "grants": False,
            "settings": False,
        }
    },
}


# The Monitoring dashboard (monitoring.tf), read from the provider's docs/resources/monitoring_dashboard.md
# at the shared schema's source_commit (b52b1df5): the arguments this module may write. True means
# required. Checked against the shared schema below.
MONITORING_CONTRACT: dict[str, dict[str, Any]] = {
    "yandex_monitoring_dashboard": {
        "attributes": {
            "name": True,
            "folder_id": False,
            "title": False,
            "description": False,
            "labels": False,
        },
        "blocks": {
            "widgets": {
                "blocks": {
                    "position": {"attributes": {"x": False, "y": False, "w": False, "h": False}},
                    "text": {"attributes": {"text": False}},
                    "title": {"attributes": {"text": True, "size": False}},
                    "chart": {
                        "attributes": {
                            "chart_id": False,
                            "title": False,
                            "description": False,
                            "display_legend": False,
                            "freeze": False,
                        },
                        "blocks": {
                            "queries": {
                                "blocks": {
                                    "target": {
                                        "attributes": {"query": False, "text_mode": False, "hidden": False}
                                    },
                                    "downsampling": {
                                        "attributes": {
                                            "disabled": False,
                                            "gap_filling": False,
                                            "grid_aggregation": False,
                                            "grid_interval": False,
                                            "max_points": False,
                                        }
                                    },
                                }
                            }
                        },
                    },
                }
            }
        },
    }
}
ADDED_CONTRACTS = VECTOR_INDEX_CONTRACT | MONITORING_CONTRACT


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def clean(node: Any) -> Any:
    """python-hcl2 keeps quotes and adds bookkeeping keys; strip both, keep the block marker."""
    if isinstance(node, dict):
        return {
            unquote(k): clean(v) for k, v in node.items() if k == "__is_block__" or not k.startswith("__")
        }
    if isinstance(node, list):
        return [clean(item) for item in node]
    return unquote(node)


def load_module() -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(MODULE.glob("*.tf")):
        with path.open() as handle:
            for kind, items in clean(hcl2.load(handle)).items():
                merged.setdefault(kind, []).extend(items)
    return merged


MODULE_HCL = load_module()
TEXT = "\n".join(path.read_text() for path in sorted(MODULE.glob("*.tf")))


def resources(kind: str = "resource") -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for item in MODULE_HCL.get(kind, []):
        for type_name, named in item.items():
            for name, body in named.items():
                found.append((type_name, name, body))
    return found


def resource(type_name: str, name: str) -> dict[str, Any]:
    return next(body for t, n, body in resources() if (t, n) == (type_name, name))


def is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def contract_problems(body: dict[str, Any], contract: dict[str, Any], where: str) -> list[str]:
    """Attributes and blocks not in the contract, and required attributes left unset."""
    problems = []
    attributes, blocks = contract.get("attributes", {}), contract.get("blocks", {})
    written = {k: v for k, v in body.items() if k != "__is_block__"}
    for dynamic in written.pop("dynamic", []):
        for name, spec in dynamic.items():
            if name == "__is_block__":
                continue
            written.setdefault(name, []).extend(spec["content"])
    for name, value in written.items():
        if name in META_ARGUMENTS:
            continue
        if name in blocks and is_block(value):
            for index, child in enumerate(value):
                problems += contract_problems(child, blocks[name], f"{where}.{name}[{index}]")
        elif name not in attributes:
            problems.append(f"{where}: {name!r} is not an argument the provider documents")
    for name, required in attributes.items():
        if required and name not in written:
            problems.append(f"{where}: required {name!r} is not set")
    return problems


def test_every_tf_file_parses() -> None:
    files = sorted(MODULE.glob("*.tf"))
    assert {path.name for path in files} >= {"versions.tf", "variables.tf", "outputs.tf"}
    assert resources(), "the module declares no resources"


def test_terraform_fmt_check() -> None:
    binary = shutil.which("terraform") or shutil.which("tofu")
    if binary is None:
        pytest.skip("no terraform or tofu binary on this machine: the python-hcl2 parse above still ran")
    result = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(MODULE)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_provider_is_pinned() -> None:
    (terraform_block,) = MODULE_HCL["terraform"]
    providers = terraform_block["required_providers"][0]
    assert providers["yandex"]["source"] == "yandex-cloud/yandex"
    # yandex_function_iam_member first appears in 0.221.0.
    assert providers["yandex"]["version"].startswith(">= 0.221")
    assert providers["archive"]["source"] == "hashicorp/archive"
    # The zip writer function.tf's archive relies on (source blocks: no time, no mode) was read at 2.5.
    assert providers["archive"]["version"] == "~> 2.5"
    assert providers["random"]["source"] == "hashicorp/random"
    assert providers["time"]["source"] == "hashicorp/time"


@pytest.mark.parametrize(("type_name", "name"), [(t, n) for t, n, _ in resources()])
def test_resource_matches_the_documented_contract(type_name: str, name: str) -> None:
    if type_name in UTILITY_CONTRACT:
        problems = contract_problems(resource(type_name, name), UTILITY_CONTRACT[type_name], type_name)
        assert problems == []
        return
    recorded = CONTRACT["resources"] | ADDED_CONTRACTS
    assert type_name in recorded, f"{type_name} is not in the recorded provider contract"
    problems = contract_problems(resource(type_name, name), recorded[type_name], f"{type_name}.{name}")
    assert problems == []


def test_added_contracts_agree_with_the_shared_schema() -> None:
    """Every argument recorded for the vector index's and the dashboard's resources is a writable one
    of the provider, required exactly when the provider requires it."""
    if not SHARED_SCHEMA.exists():
        pytest.skip(f"{SHARED_SCHEMA} is absent: the recorded arguments stand unchecked")
    schema = json.loads(SHARED_SCHEMA.read_text())["resources"]

    def disagreements(recorded: dict[str, Any], node: dict[str, Any], where: str) -> list[str]:
        found = []
        for name, required in recorded.get("attributes", {}).items():
            attribute = node.get("attributes", {}).get(name)
            if attribute is None or attribute.get("read_only"):
                found.append(f"{where}.{name} is not a writable argument")
            elif attribute["required"] != required:
                found.append(f"{where}.{name}: required is {attribute['required']}, recorded {required}")
        for name, block in recorded.get("blocks", {}).items():
            if name not in node.get("blocks", {}):
                found.append(f"{where}.{name} is not a block")
            else:
                found += disagreements(block, node["blocks"][name], f"{where}.{name}")
        return found

    problems = []
    for type_name, recorded in ADDED_CONTRACTS.items():
        assert type_name not in CONTRACT["resources"], f"{type_name} is recorded twice"
        problems += disagreements(recorded, schema[type_name], type_name)
    assert problems == []


def test_data_sources_match_their_contract() -> None:
    for type_name, name, body in resources("data"):
        assert type_name in CONTRACT["data_sources"]
        assert contract_problems(body, CONTRACT["data_sources"][type_name], f"data.{type_name}.{name}") == []


def test_module_against_the_shared_provider_schema() -> None:
    if not SHARED_SCHEMA.exists():
        pytest.skip(f"{SHARED_SCHEMA} is absent: checked against the recorded contract only")
    schema = json.loads(SHARED_SCHEMA.read_text())["resources"]

    def writable(node: dict[str, Any]) -> dict[str, Any]:
        return {
            "attributes": {
                n: a["required"] for n, a in node.get("attributes", {}).items() if not a.get("read_only")
            },
            "blocks": {n: writable(b) for n, b in node.get("blocks", {}).items()},
        }

    problems = []
    for type_name, name, body in resources():
        if not type_name.startswith("yandex_"):
            continue
        assert type_name in schema, f"{type_name} is not a resource of the provider"
        problems += contract_problems(body, writable(schema[type_name]), f"{type_name}.{name}")
    assert problems == []


def test_contract_record_names_its_source() -> None:
    assert CONTRACT["provider"] == "yandex-cloud/yandex"
    assert re.fullmatch(r"[0-9a-f]{40}", CONTRACT["source_commit"])


def test_every_reference_resolves() -> None:
    declared = {f"{t}.{n}" for t, n, _ in resources()}
    declared_data = {f"data.{t}.{n}" for t, n, _ in resources("data")}
    variables = {name for item in MODULE_HCL["variable"] for name in item}
    local_names = {name for item in MODULE_HCL.get("locals", []) for name in item if name != "__is_block__"}
    for match in re.finditer(r"(?<![\w.])(yandex_[a-z0-9_]+)\.([a-z0-9_]+)", TEXT):
        assert f"{match[1]}.{match[2]}" in declared, f"{match[0]} is not declared"
    for match in re.finditer(r"\bdata\.([a-z0-9_]+)\.([a-z0-9_]+)", TEXT):
        assert f"data.{match[1]}.{match[2]}" in declared_data, f"{match[0]} is not declared"
    for match in re.finditer(r"(?<![\w.-])var\.([a-z0-9_]+)", TEXT):
        assert match[1] in variables, f"var.{match[1]} is not declared"
    for match in re.finditer(r"(?<![\w.-])local\.([a-z0-9_]+)", TEXT):
        assert match[1] in local_names, f"local.{match[1]} is not declared"


def test_variables_are_described_and_typed() -> None:
    for item in MODULE_HCL["variable"]:
        for name, body in item.items():
            assert body.get("description"), f"variable {name} has no description"
            assert body.get("type"), f"variable {name} has no type"


def local_value(name: str) -> Any:
    (value,) = [item[name] for item in MODULE_HCL["locals"] if name in item]
    return value


def vector_db_settings() -> set[str]:
    """The settings the vector index adds to the secret ones, when there is an index."""
    return set(re.findall(r'"(VECTOR_DB_[A-Z_]+)"', local_value("vector_db_secret_keys")))


def function_environment() -> set[str]:
    (locals_block,) = [item for item in MODULE_HCL["locals"] if "environment" in item]
    plain = set(locals_block["environment"])
    secret = set(locals_block["secret_environment"])
    return plain | secret | vector_db_settings()


def test_function_environment_matches_the_settings() -> None:
    known = {name.upper() for name in Settings.model_fields}
    environment = function_environment()
    assert environment <= known, f"not settings the code reads: {environment - known}"
    # What a cloud deployment needs: the folder for model URIs, the bucket for reconcile and queue
    # messages, the queue for continuations, keys for SigV4 to Message Queue.
    assert {
        "YC_FOLDER_ID",
        "SOURCE_BUCKET",
        "QUEUE_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    } <= environment
    assert {"EMBEDDINGS_RPS", "SOURCE_PREFIX", "OUTPUT_PREFIX", "HTTP_API_KEYS"} <= environment


def test_settings_reference_matches_the_settings() -> None:
    readme = (ROOT / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)`", readme, flags=re.MULTILINE))
    documented |= set(re.findall(r"^\| `AWS_ACCESS_KEY_ID`, `([A-Z_]+)`", readme, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_function_runtime_and_entry_point_match_the_code() -> None:
    function = resource("yandex_function", "pipeline")
    assert function["runtime"] == "python312"
    assert function["entrypoint"] == "index.handler"
    assert "def handler(event" in (ROOT / "index.py").read_text()
    assert "data.archive_file.function.output_sha256" in function["user_hash"]


def test_no_primitive_roles() -> None:
    roles = [body["role"] for _, _, body in resources() if "role" in body]
    assert roles
    assert not set(roles) & PRIMITIVE_ROLES
    assert all(role.count(".") >= 1 for role in roles), roles


def test_bucket_is_private() -> None:
    bucket = resource("yandex_storage_bucket", "docs")
    (flags,) = bucket["anonymous_access_flags"]
    assert (flags["read"], flags["list"], flags["config_read"]) == (False, False, False)
    assert "acl" not in bucket
    assert "grant" not in bucket
    assert "AllUsers" not in TEXT
    assert "allUsers" not in TEXT
    assert "allAuthenticatedUsers" not in TEXT


def test_function_stays_private() -> None:
    members = [body["member"] for t, _, body in resources() if t == "yandex_function_iam_member"]
    assert members
    assert all(member.startswith("serviceAccount:") for member in members)


# What the function's archive is made of: these files and these globs of function.tf's include list.
ARCHIVE_INCLUDES = ["index.py", "requirements.txt", "embedding_pipeline/**/*.py", "handlers/**/*.py"]
ARCHIVE_PACKAGES = ("embedding_pipeline", "handlers")


def archive_includes() -> list[str]:
    """The include list as function.tf writes it: named files, then fileset() patterns."""
    files = local_value("function_files")
    named = re.search(r"concat\(\[([^\]]*)\]", files)
    assert named, files
    patterns = re.findall(r'fileset\(local\.function_root, "([^"]+)"\)', files)
    return re.findall(r'"([^"]+)"', named[1]) + patterns


def archive_files() -> set[str]:
    """The files the archive holds: what fileset() lists for each pattern (pathlib's glob, like
    fileset's, lets `**` match no directory at all), relative to the repository root."""
    found: set[str] = set()
    for pattern in archive_includes():
        found |= {path.relative_to(ROOT).as_posix() for path in ROOT.glob(pattern) if path.is_file()}
    return found


def test_the_archive_is_built_from_an_include_list() -> None:
    assert archive_includes() == ARCHIVE_INCLUDES
    assert local_value("function_root") == "${path.module}/.."
    ((kind, _, archive),) = resources("data")
    assert kind == "archive_file"
    # Every entry comes from a source block over the include list: nothing walks a directory.
    for walked in ("source_dir", "source_file", "excludes", "source_content"):
        assert walked not in archive, walked
    source = dynamic_block(archive, "source")
    assert source["for_each"] == "${local.function_files}"
    (entry,) = source["content"]
    assert entry["filename"] == "${source.value}"
    assert entry["content"] == '${file("${local.function_root}/${source.value}")}'


def test_the_archive_does_not_depend_on_file_modes() -> None:
    """hashicorp/archive 2.5 copies a file's mode into the zip only for source_dir and source_file
    (createWalkFunc and ArchiveFile in zip_archiver.go; output_file_mode overrides it there). Source
    blocks go through ArchiveMultiple, which writes name-sorted entries with no mode and no time, so
    the hash is the same on every machine. The archive must take nothing any other way."""
    ((_, _, archive),) = resources("data")
    assert "source_dir" not in archive
    assert "source_file" not in archive
    assert [name for item in archive["dynamic"] for name in item if name != "__is_block__"] == ["source"]


def test_the_archive_holds_what_the_function_imports_and_no_cache() -> None:
    files = archive_files()
    assert {"index.py", "requirements.txt", "embedding_pipeline/settings.py", "handlers/__init__.py"} <= files
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]
    outside = {"tests", "terraform", "testkit", "embedpipe", "devstack", "bench", "integrations"}
    assert not [name for name in files if name.split("/")[0] in outside]
    # The packages hold nothing but sources the include list takes: a data file added to one would
    # be left out of the function, so it fails here first.
    for package in ARCHIVE_PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                assert path.relative_to(ROOT).as_posix() in files, f"{path} is not in the archive"
    # Terraform's file() reads UTF-8 text only.
    for name in files:
        (ROOT / name).read_bytes().decode("utf-8")
    # Whatever the function imports from this repository is in the archive.
    first_party = {path.stem for path in ROOT.glob("*.py")}
    first_party |= {path.name for path in ROOT.iterdir() if (path / "__init__.py").exists()}
    imported: set[str] = set()
    for name in files:
        if not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse((ROOT / name).read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported & first_party <= {"index", *ARCHIVE_PACKAGES}, imported & first_party


def test_secrets_are_not_outputs() -> None:
    for item in MODULE_HCL["output"]:
        for name, body in item.items():
            assert "static_access_key" not in body["value"], name
            assert "access_key" not in body["value"], name
            assert "secret_key" not in body["value"], name
            if "api_keys" in body["value"] and "yandex_lockbox_secret." not in body["value"]:
                assert body.get("sensitive") is True, f"output {name} shows an API key unmarked"


def test_queue_has_a_redrive_policy_to_its_dlq() -> None:
    jobs = resource("yandex_message_queue", "jobs")
    assert "yandex_message_queue.jobs_dlq.arn" in jobs["redrive_policy"]
    assert "var.max_receive_count" in jobs["redrive_policy"]


def test_triggers_cover_every_kind_with_retries_and_dlq() -> None:
    triggers = {name: body for t, name, body in resources() if t == "yandex_function_trigger"}
    uploads = triggers["uploads"]["object_storage"][0]
    assert (uploads["create"], uploads["delete"], uploads["update"]) == (True, True, False)
    assert uploads["prefix"] == "${var.source_prefix}"
    assert "dlq" in triggers["uploads"]
    assert "dlq" in triggers["reconcile"]
    assert "message_queue" in triggers["jobs"]
    assert "reconcile" in triggers["reconcile"]["timer"][0]["payload"]


def gateway_spec() -> dict[str, Any]:
    """The OpenAPI spec as the gateway receives it, with the template's variables filled in."""
    text = (MODULE / "openapi.yaml.tpl").read_text()
    placeholders = set(re.findall(r"\$\{([a-z_]+)\}", text))
    gateway = resource("yandex_api_gateway", "http")
    # Every placeholder is one the templatefile call in gateway.tf provides.
    assert placeholders == set(re.findall(r"([a-z_]+) = ", gateway["spec"])), placeholders
    filled = {"rate_limit_rps": "20", "function_id": "d4e-http", "service_account_id": "aje-gateway"}
    parsed: dict[str, Any] = yaml.safe_load(re.sub(r"\$\{([a-z_]+)\}", lambda m: filled[m[1]], text))
    return parsed


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    methods = {"get", "post", "put", "delete", "patch", "x-yc-apigateway-any-method"}
    return [
        (path, method.upper(), body)
        for path, item in spec["paths"].items()
        for method, body in item.items()
        if method in methods
    ]


def methods_of(path: str) -> dict[str, Any]:
    """The function's routes for a gateway path; `{key+}` is a greedy parameter, a document key."""
    if path.endswith("/{key+}"):
        return PREFIX_ROUTES[path.removesuffix("{key+}")]
    return ROUTES[path]


def test_gateway_spec_routes_every_path_to_the_http_function() -> None:
    spec = gateway_spec()
    routed = {(path, method) for path, method, _ in operations(spec)}
    expected = {(path, method) for path in ROUTES for method in ROUTES[path]}
    expected |= {(f"{prefix}{{key+}}", method) for prefix, keyed in PREFIX_ROUTES.items() for method in keyed}
    assert routed == expected
    invoking = [body for _, _, body in operations(spec) if "d4e-http" in json.dumps(body)]
    assert len(invoking) == len(expected) - 1  # all but /healthz
    for body in invoking:
        integration = body["x-yc-apigateway-integration"]
        assert integration["type"] == "cloud_functions"
        assert integration["payload_format_version"] == "1.0"
        assert integration["service_account_id"] == "aje-gateway"
    gateway = resource("yandex_api_gateway", "http")
    assert 'function_id = yandex_function.pipeline["http"].id' in gateway["spec"]


def test_every_gateway_route_that_reaches_a_function_needs_a_key() -> None:
    spec = gateway_spec()
    for path, method, body in operations(spec):
        integration = body["x-yc-apigateway-integration"]
        if integration["type"] == "dummy":
            # Answered by the gateway itself: nothing behind it to protect.
            assert "function_id" not in integration, path
            assert integration["http_code"] == 200
            continue
        assert integration["type"] == "cloud_functions", (path, integration["type"])
        handler, needs_key = methods_of(path)[method]
        assert needs_key, f"{method} {path} reaches {handler.__name__} without a key"
    assert spec["paths"]["/healthz"]["get"]["x-yc-apigateway-integration"]["type"] == "dummy"


def applied_rate_limit(spec: dict[str, Any], path: str, operation: dict[str, Any]) -> Any:
    """The limit API Gateway applies to an operation: its own, else its path's, else the gateway's
    (x-yc-apigateway.rateLimit). Per-path and per-operation limits are not supported on paths with
    greedy parameters (en/api-gateway/concepts/extensions/rate-limit.md), so there the gateway's is
    the only one that counts."""
    if "+}" in path:
        return spec["x-yc-apigateway"].get("rateLimit")
    own = operation.get("x-yc-apigateway-rate-limit") or spec["paths"][path].get("x-yc-apigateway-rate-limit")
    return own or spec["x-yc-apigateway"].get("rateLimit")


def test_the_gateway_limits_every_route_it_serves() -> None:
    spec = gateway_spec()
    greedy = [path for path in spec["paths"] if "+}" in path]
    assert greedy == ["/v1/documents/{key+}"]
    for path, _, operation in operations(spec):
        assert applied_rate_limit(spec, path, operation) == {"allRequests": {"rps": 20}}, path
    # No limit where the gateway would not apply it: it would read as protection that is not there.
    for path in greedy:
        item = spec["paths"][path]
        assert "x-yc-apigateway-rate-limit" not in item, path
        limited = [m for m, op in item.items() if isinstance(op, dict) and "x-yc-apigateway-rate-limit" in op]
        assert not limited, path
    gateway = resource("yandex_api_gateway", "http")
    assert "rate_limit_rps = var.http_rate_limit_rps" in gateway["spec"]


def test_http_has_its_own_function_and_capacity() -> None:
    (functions_local,) = [item["functions"] for item in MODULE_HCL["locals"] if "functions" in item]
    assert set(functions_local) == {"ingest", "http"}
    assert functions_local["ingest"]["instances_per_zone"] == "${var.instances_per_zone}"
    assert functions_local["http"]["instances_per_zone"] == "${var.http_instances_per_zone}"
    assert functions_local["http"]["timeout_s"] == "${var.http_function_timeout_s}"
    function = resource("yandex_function", "pipeline")
    assert function["for_each"] == "${local.functions}"
    assert function["execution_timeout"] == "${tostring(each.value.timeout_s)}"
    policy = resource("yandex_function_scaling_policy", "pipeline")
    assert policy["for_each"] == "${local.functions}"
    assert policy["function_id"] == "${yandex_function.pipeline[each.key].id}"
    (rules,) = policy["policy"]
    assert rules["zone_instances_limit"] == rules["zone_requests_limit"] == "${each.value.instances_per_zone}"
    # Triggers invoke the ingestion function, the gateway only the HTTP one.
    triggers = [body for t, _, body in resources() if t == "yandex_function_trigger"]
    assert len(triggers) == 3
    assert all(body["function"][0]["id"] == '${yandex_function.pipeline["ingest"].id}' for body in triggers)
    invokers = {
        name: body["function_id"] for t, name, body in resources() if t == "yandex_function_iam_member"
    }
    assert invokers == {
        "triggers_invoke": '${yandex_function.pipeline["ingest"].id}',
        "queue_trigger_invoke": '${yandex_function.pipeline["ingest"].id}',
        "gateway_invoke": '${yandex_function.pipeline["http"].id}',
    }
    gateway = resource("yandex_api_gateway", "http")
    assert gateway["execution_timeout"] == "${tostring(var.http_function_timeout_s)}"
    # A deployment made before the split keeps its function as the ingestion one.
    moves = {(item["from"], item["to"]) for item in MODULE_HCL["moved"]}
    assert ("${yandex_function.pipeline}", '${yandex_function.pipeline["ingest"]}') in moves


def test_scaling_stays_within_the_quotas() -> None:
    # EMBEDDINGS_RPS is the folder's whole quota: instances split it at run time (quota_share.py).
    (locals_block,) = [item for item in MODULE_HCL["locals"] if "environment" in item]
    assert locals_block["environment"]["EMBEDDINGS_RPS"] == "${tostring(var.embeddings_quota_rps)}"
    assert "QUOTA_SHARING" not in locals_block["environment"]  # on by default
    bucket = resource("yandex_storage_bucket", "docs")
    rules = {rule["id"]: rule for rule in bucket["lifecycle_rule"]}
    assert rules["expire-quota-announcements"]["filter"][0]["prefix"] == "${var.output_prefix}_quota/"
    # Both functions' instances together fit the cloud's concurrent-calls quota per zone.
    conditions = validations_of("http_instances_per_zone")
    assert (
        "var.instances_per_zone + var.http_instances_per_zone <= var.function_calls_per_zone_quota"
        in conditions
    )
    (quota,) = [
        item["function_calls_per_zone_quota"]
        for item in MODULE_HCL["variable"]
        if "function_calls_per_zone_quota" in item
    ]
    assert quota["default"] == 10


def test_bucket_refuses_static_keys_by_default() -> None:
    bucket = resource("yandex_storage_bucket", "docs")
    assert bucket["disabled_statickey_auth"] == "${!var.bucket_static_key_access}"
    (switch,) = [
        item["bucket_static_key_access"]
        for item in MODULE_HCL["variable"]
        if "bucket_static_key_access" in item
    ]
    assert switch["default"] is False
    # ... which works because the function signs storage requests with its IAM token.
    (locals_block,) = [item for item in MODULE_HCL["locals"] if "environment" in item]
    assert locals_block["environment"]["S3_USE_ACCESS_KEYS"] == "false"


def grants_of(account: str) -> list[str]:
    """Every role granted anywhere to the service account `yandex_iam_service_account.<account>`."""
    member = f"serviceAccount:${{yandex_iam_service_account.{account}.id}}"
    roles = []
    for _, _, body in resources():
        if "role" in body and (body.get("member") == member or member in body.get("members", [])):
            roles.append(body["role"])
    return roles


def account_of(reference: str) -> str:
    match = re.fullmatch(r"\$\{yandex_iam_service_account\.([a-z0-9_]+)\.id\}", reference)
    assert match, reference
    return match[1]


def test_the_api_keys_are_always_there() -> None:
    # Given or generated, never conditional, and the gateway refuses to exist without them.
    (locals_block,) = [item for item in MODULE_HCL["locals"] if "secret_environment" in item]
    assert "HTTP_API_KEYS" in locals_block["secret_environment"]
    gateway = resource("yandex_api_gateway", "http")
    (lifecycle,) = gateway["lifecycle"]
    assert "length(local.http_api_keys) > 0" in lifecycle["precondition"][0]["condition"]
    assert resource("random_password", "http_api_key")["length"] >= 32


def test_generated_api_key_is_in_lockbox_and_a_sensitive_output() -> None:
    version = resource("yandex_lockbox_secret_version_hashed", "api_keys")
    assert version["key_1"] == "HTTP_API_KEYS"
    assert "local.http_api_keys" in version["text_value_1"]
    outputs = {name: body for item in MODULE_HCL["output"] for name, body in item.items()}
    assert outputs["http_api_key"]["sensitive"] is True


def test_static_keys_hold_one_role_and_stay_out_of_state() -> None:
    keys = [body for t, _, body in resources() if t == "yandex_iam_service_account_static_access_key"]
    assert keys
    for key in keys:
        assert grants_of(account_of(key["service_account_id"])) == ["ymq.writer"]
        (lockbox,) = key["output_to_lockbox"]
        assert lockbox["secret_id"].startswith("${yandex_lockbox_secret.")
    assert "ymq.admin" not in {body.get("role") for _, _, body in resources()}
    for _, name, queue in [r for r in resources() if r[0] == "yandex_message_queue"]:
        assert "access_key" not in queue, name
        assert "secret_key" not in queue, name


def test_trigger_duties_are_split() -> None:
    triggers = {name: body for t, name, body in resources() if t == "yandex_function_trigger"}
    for name in ("uploads", "reconcile"):
        account = account_of(triggers[name]["function"][0]["service_account_id"])
        assert grants_of(account) == ["functions.functionInvoker"], name
    queue_account = account_of(triggers["jobs"]["message_queue"][0]["service_account_id"])
    assert queue_account == account_of(triggers["jobs"]["function"][0]["service_account_id"])
    assert queue_account not in {
        account_of(triggers[name]["function"][0]["service_account_id"]) for name in ("uploads", "reconcile")
    }
    assert sorted(grants_of(queue_account)) == ["functions.functionInvoker", "ymq.reader"]
    # The function's own account signs nothing for Message Queue: the queue sender's key does.
    assert not [role for role in grants_of("function") if role.startswith("ymq.")]


def validations_of(name: str) -> str:
    (body,) = [item[name] for item in MODULE_HCL["variable"] if name in item]
    return " ".join(str(rule["condition"]) for rule in body.get("validation", []))


@pytest.mark.parametrize(
    ("variable", "limits"),
    [
        ("storage_batch_size", [">= 1", "<= 10"]),
        ("storage_batch_cutoff_s", [">= 1", "<= 60"]),
        ("queue_batch_size", [">= 1", "<= 1000"]),
        ("queue_batch_cutoff_s", [">= 0", "<= 20"]),
        ("trigger_retry_attempts", [">= 1", "<= 5"]),
        ("trigger_retry_interval_s", [">= 10", "<= 60"]),
        ("function_timeout_s", ["<= 600"]),
        ("http_function_timeout_s", ["<= 300"]),
        ("http_instances_per_zone", ["var.function_calls_per_zone_quota"]),
        ("extra_source_buckets", ["<= 2048"]),
        ("chunk_max_tokens", ["<= 2000"]),
        ("reconcile_cron", ["[5, 6]"]),
        ("reconcile_page_size", [">= 1", "<= 10000"]),
        ("source_prefix", ["length(var.source_prefix) > 0"]),
        (
            "vector_index",
            [
                '["none", "managed", "existing"]',
                "local.vector_db_dsn_given",
                "local.vector_db_dsn_is_url",
                "local.vector_db_password_given",
                "local.vector_db_password_usable",
            ],
        ),
        ("vector_db_postgresql_version", ['["16", "17"]']),
        ("vector_db_disk_size_gb", [">= 10"]),
        ("vector_db_subnet_cidrs", ["var.zone", '"198.19."']),
        (
            "output_prefix",
            [
                "startswith(var.output_prefix, var.source_prefix)",
                "startswith(var.source_prefix, var.output_prefix)",
            ],
        ),
    ],
)
def test_every_documented_limit_has_a_validation(variable: str, limits: list[str]) -> None:
    conditions = validations_of(variable)
    for limit in limits:
        assert limit in conditions, f"{variable}: no validation for {limit}"


def test_stateful_resources_are_protected() -> None:
    cluster = resource("yandex_mdb_postgresql_cluster", "vector_db")
    assert cluster["deletion_protection"] == "${var.vector_db_deletion_protection}"
    assert variable("vector_db_deletion_protection")["default"] is True
    key = resource("yandex_kms_symmetric_key", "bucket")
    assert key["deletion_protection"] is True
    (lifecycle,) = key["lifecycle"]
    assert lifecycle["prevent_destroy"] is True


# The vector index (vector_index.tf): "none" adds nothing, "managed" builds a private cluster whose
# password reaches the functions through Lockbox only, "existing" passes the operator's DSN along.


def variable(name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [item[name] for item in MODULE_HCL["variable"] if name in item]
    (body,) = found
    return body


def dynamic_block(body: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [item[name] for item in body["dynamic"] if name in item]
    (block,) = found
    return block


def vector_index_resources() -> list[tuple[str, str, dict[str, Any]]]:
    with (MODULE / "vector_index.tf").open() as handle:
        parsed = clean(hcl2.load(handle))
    return [
        (type_name, name, body)
        for item in parsed["resource"]
        for type_name, named in item.items()
        for name, body in named.items()
    ]


def test_vector_index_modes_are_validated() -> None:
    mode = variable("vector_index")
    assert mode["default"] == "none"
    rule = mode["validation"][0]
    assert rule["condition"] == '${contains(["none", "managed", "existing"], var.vector_index)}'
    # The table of what each mode builds has exactly the modes the variable accepts.
    assert set(local_value("vector_index_modes")) == {"none", "managed", "existing"}
    assert local_value("vector_index") == "${local.vector_index_modes[var.vector_index]}"


def test_no_vector_index_creates_nothing_and_sets_nothing() -> None:
    modes = local_value("vector_index_modes")
    assert modes["none"] == {"cluster": False, "settings": False}
    assert modes["existing"] == {"cluster": False, "settings": True}
    assert modes["managed"] == {"cluster": True, "settings": True}
    # Every resource of the index exists only in a mode that asks for it.
    gates = {
        "local.vector_index.cluster ?",
        "local.vector_index.settings ?",
        "local.vector_db_network_created ?",
    }
    made = vector_index_resources()
    assert {t for t, _, _ in made} >= {"yandex_mdb_postgresql_cluster", "yandex_lockbox_secret"}
    for type_name, name, body in made:
        count = body.get("count") or body.get("for_each")
        assert count is not None, f"{type_name}.{name} is made in every mode"
        assert any(gate in count for gate in gates), f"{type_name}.{name}: {count}"
    assert "local.vector_index.cluster &&" in local_value("vector_db_network_created")
    # No setting without an index: the secret ones are gated, and none is a plain one.
    keys = local_value("vector_db_secret_keys")
    assert keys.startswith("${local.vector_index.settings ? ")
    assert keys.endswith(" : []}")
    # The plain settings, where the CA is published and the table's name, are empty (so unset)
    # without an index.
    environment = local_value("environment")
    plain = {name: value for name, value in environment.items() if name.startswith("VECTOR_DB_")}
    assert set(plain) == {"VECTOR_DB_CA_URL", "VECTOR_DB_TABLE"}
    assert plain["VECTOR_DB_TABLE"] == '${local.vector_index.settings ? var.vector_db_table : ""}'
    assert local_value("vector_db_ca_url") == (
        "${(local.vector_index.cluster ? local.vector_db_yandex_ca_url"
        " : local.vector_index.settings ? var.vector_db_ca_url : null)}"
    )
    assert vector_db_settings() == {"VECTOR_DB_DSN", "VECTOR_DB_PASSWORD"}
    # ... nor a network for the functions: they join one only with an index that needs it.
    assert local_value("functions_join_network").startswith("${local.vector_index.settings && ")
    function = resource("yandex_function", "pipeline")
    connectivity = dynamic_block(function, "connectivity")
    assert connectivity["for_each"] == "${local.functions_join_network ? [local.vector_db_network_id] : []}"


def test_vector_db_secrets_reach_the_functions_through_lockbox_only() -> None:
    function = resource("yandex_function", "pipeline")
    secrets = dynamic_block(function, "secrets")
    assert secrets["for_each"] == "${merge(local.secret_environment, local.vector_db_secret_environment)}"
    assert "VECTOR_DB" not in json.dumps(function.get("environment"))
    plain = {name: value for name, value in local_value("environment").items() if "VECTOR_DB" in name}
    assert plain == {
        "VECTOR_DB_CA_URL": '${local.vector_db_ca_url != null ? local.vector_db_ca_url : ""}',
        "VECTOR_DB_TABLE": '${local.vector_index.settings ? var.vector_db_table : ""}',
    }
    version = resource("yandex_lockbox_secret_version_hashed", "vector_db")
    assert version["key_1"] == "VECTOR_DB_DSN"
    assert version["text_value_1"] == "${local.vector_db_dsn}"
    assert version["key_2"] == '${local.vector_db_has_password ? "VECTOR_DB_PASSWORD" : null}'
    assert version["text_value_2"] == "${local.vector_db_has_password ? local.vector_db_password : null}"
    # "managed": the generated password, the one the database user gets.
    assert local_value("vector_db_password").startswith(
        "${local.vector_index.cluster ? one(random_password.vector_db[*].result) : "
    )
    user = resource("yandex_mdb_postgresql_user", "vector_db")
    assert user["password"] == "${random_password.vector_db[0].result}"
    assert resource("random_password", "vector_db")["length"] >= 32
    secret_environment = local_value("vector_db_secret_environment")
    assert "yandex_lockbox_secret.vector_db[0].id" in secret_environment
    assert "yandex_lockbox_secret_version_hashed.vector_db[0].id" in secret_environment
    # The function's account may read this secret, and the function waits for the grant.
    grant = resource("yandex_lockbox_secret_iam_member", "function_reads_vector_db")
    assert grant["secret_id"] == "${yandex_lockbox_secret.vector_db[0].id}"
    assert grant["role"] == "lockbox.payloadViewer"
    assert account_of(grant["member"].removeprefix("serviceAccount:")) == "function"
    assert "${yandex_lockbox_secret_iam_member.function_reads_vector_db}" in function["depends_on"]
    # What the operator brings is sensitive from the start.
    assert variable("vector_db_dsn")["sensitive"] is True
    assert variable("vector_db_password")["sensitive"] is True


def test_no_rule_can_print_a_secret() -> None:
    # Terraform prints the value of every variable a failed rule refers to, sensitive or not: a
    # sensitive string is checked through booleans derived from it, by another variable's rules.
    sensitive_strings = {
        name
        for item in MODULE_HCL["variable"]
        for name, body in item.items()
        if body.get("sensitive") is True and body["type"] == "string"
    }
    assert {"vector_db_dsn", "vector_db_password"} <= sensitive_strings
    for name in sensitive_strings:
        assert "validation" not in variable(name), name
    for name in ("vector_db_dsn_given", "vector_db_dsn_is_url", "vector_db_password_given"):
        assert local_value(name).startswith("${nonsensitive("), name


def test_vector_db_dsn_verifies_the_server_and_carries_no_password() -> None:
    assert local_value("vector_db_host") == (
        '${local.vector_index.cluster ? "c-${local.vector_db_cluster_id}.rw.mdb.yandexcloud.net" : null}'
    )
    dsn = local_value("vector_db_managed_dsn")
    assert '"postgresql://%s@%s:6432/%s?sslmode=verify-full"' in dsn
    assert "password" not in dsn


def test_a_managed_index_trusts_yandexs_ca_and_nothing_else() -> None:
    """verify-full against Managed PostgreSQL needs Yandex's Internal Root CA, which no default
    store holds: the functions fetch it from where Yandex publishes it, over checked HTTPS."""
    assert local_value("vector_db_yandex_ca_url") == "https://storage.yandexcloud.net/cloud-certs/CA.pem"
    assert local_value("vector_db_ca_url").startswith(
        "${(local.vector_index.cluster ? local.vector_db_yandex_ca_url :"
    )
    rule = variable("vector_db_ca_url")["validation"][0]
    assert "^https://" in rule["condition"]


def test_a_new_database_gets_a_utf8_locale_and_an_existing_one_is_never_replaced_for_it() -> None:
    """Managed PostgreSQL's default locale is C (lower() leaves Cyrillic capitals); the locale is fixed
    at creation and ForceNew in the provider, so a database made before must keep its own."""
    database = resource("yandex_mdb_postgresql_database", "vector_db")
    assert database["lc_collate"] == database["lc_type"] == "${var.vector_db_locale}"
    assert database["lifecycle"][0]["ignore_changes"] == ["lc_collate", "lc_type"]
    locale = variable("vector_db_locale")
    assert locale["default"] == "ru_RU.UTF-8"
    rule = re.compile(r"^(C|[a-zA-Z_]+\.UTF-8)$")  # the API's pattern for DatabaseSpec.lc_collate
    for value in ("C", "ru_RU.UTF-8", "en_US.UTF-8"):
        assert rule.match(value)
    assert not rule.match("ru_RU.KOI8-R")
    assert "UTF-8" in locale["validation"][0]["condition"]


def test_the_database_enables_pgvector() -> None:
    database = resource("yandex_mdb_postgresql_database", "vector_db")
    (extension,) = database["extension"]
    assert extension["name"] == "${var.vector_db_extension}"
    names = variable("vector_db_extension")
    assert names["default"] == "pgvector"
    assert (
        names["validation"][0]["condition"] == '${contains(["pgvector", "vector"], var.vector_db_extension)}'
    )
    assert database["owner"] == "${yandex_mdb_postgresql_user.vector_db[0].name}"
    # HNSW needs pgvector 0.5 or later: PostgreSQL 16 and 17 carry 0.8.0 in Managed PostgreSQL.
    (cluster_config,) = resource("yandex_mdb_postgresql_cluster", "vector_db")["config"]
    assert cluster_config["version"] == "${var.vector_db_postgresql_version}"
    assert variable("vector_db_postgresql_version")["default"] in {"16", "17"}


def test_the_vector_db_user_has_nothing_beyond_its_database() -> None:
    from embedding_pipeline.vector_index import postgres  # noqa: PLC0415 - only this test needs it

    user = resource("yandex_mdb_postgresql_user", "vector_db")
    assert user["grants"] == []
    assert "permission" not in user  # the owner of its database reaches it, and nothing else
    assert user["settings"] == {"pool_mode": "session"}
    assert user["conn_limit"] == "${local.vector_db_conn_limit}"
    limit = local_value("vector_db_conn_limit")
    assert "(var.instances_per_zone + var.http_instances_per_zone)" in limit
    assert "local.vector_db_pool_size" in limit
    assert "local.vector_db_function_zones" in limit
    assert local_value("vector_db_pool_size") == postgres._POOL_SIZE
    assert local_value("vector_db_function_zones") == 3
    # One user, one database, and no cloud role on the cluster for anyone.
    assert len([t for t, _, _ in resources() if t == "yandex_mdb_postgresql_user"]) == 1
    assert len([t for t, _, _ in resources() if t == "yandex_mdb_postgresql_database"]) == 1
    assert not [body["role"] for _, _, body in resources() if "managed-postgresql" in str(body.get("role"))]


def test_the_vector_db_cluster_is_private() -> None:
    cluster = resource("yandex_mdb_postgresql_cluster", "vector_db")
    (host,) = cluster["host"]
    assert host["assign_public_ip"] is False
    (cluster_config,) = cluster["config"]
    (access,) = cluster_config["access"]
    granted = {name: value for name, value in access.items() if name != "__is_block__"}
    assert granted == dict.fromkeys(("data_lens", "data_transfer", "serverless", "web_sql"), False)
    assert cluster["security_group_ids"] == ["${yandex_vpc_security_group.vector_db[0].id}"]
    group = resource("yandex_vpc_security_group", "vector_db")
    (ingress,) = group["ingress"]
    assert (ingress["protocol"], ingress["port"]) == ("TCP", 6432)
    assert ingress["v4_cidr_blocks"] == '${concat(["198.19.0.0/16"], var.vector_db_allowed_cidrs)}'
    assert "egress" not in group
    assert variable("vector_db_allowed_cidrs")["default"] == []
    # Functions in a network need a subnet in each zone.
    assert set(variable("vector_db_subnet_cidrs")["default"]) == {
        "ru-central1-a",
        "ru-central1-b",
        "ru-central1-d",
    }


def test_vector_db_outputs_hold_no_secrets() -> None:
    for item in MODULE_HCL["output"]:
        for name, body in item.items():
            value = str(body["value"])
            for secret in ("random_password.vector_db", "var.vector_db_password", "var.vector_db_dsn"):
                assert secret not in value, name
            assert not re.search(r"local\.vector_db_(password|dsn)\b", value), name
    outputs = {name for item in MODULE_HCL["output"] for name in item}
    assert {
        "vector_db_cluster_id",
        "vector_db_host",
        "vector_db_connection",
        "vector_db_secret_id",
    } <= outputs


# Issue 35: what the provider, the gateway and the platform do not say at plan time.


def test_a_function_without_a_version_fails_the_apply() -> None:
    """The provider saves a function whose first version failed with a warning only; `version`
    (read-only, from the $latest version) stays empty then, and the postcondition turns that into
    an error, at apply and at every plan after it, naming the way out."""
    function = resource("yandex_function", "pipeline")
    (lifecycle,) = function["lifecycle"]
    (rule,) = lifecycle["postcondition"]
    assert rule["condition"] == '${self.version != null && self.version != ""}'
    assert "terraform apply -replace='yandex_function.pipeline[\\\"${each.key}\\\"]'" in rule["error_message"]
    if SHARED_SCHEMA.exists():
        schema = json.loads(SHARED_SCHEMA.read_text())["resources"]["yandex_function"]
        assert schema["attributes"]["version"]["read_only"] is True
    guide = (MODULE / "README.md").read_text()
    for key in ("ingest", "http"):
        assert f"terraform apply -replace='yandex_function.pipeline[\"{key}\"]'" in guide


# A plan saved with -out holds every variable and secret in clear.
SAVED_PLAN = re.compile(r"\b(?:terraform|tofu)\s+plan\b[^\n]*?\s-out(?:=|\s+)(\S+)")


def test_no_guide_leaves_a_saved_plan_behind() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {"*.tfplan", "terraform/*.tfplan"} <= set(ignored)
    assert SAVED_PLAN.search("terraform plan -out plan.tfplan")  # the pattern finds what it must
    for guide in (ROOT / "README.md", ROOT / "docs" / "deploy.md", MODULE / "README.md"):
        for block in re.findall(r"```[a-z]*\n(.*?)```", guide.read_text(), flags=re.DOTALL):
            for saved in SAVED_PLAN.finditer(block):
                removed = re.search(rf"\brm\b[^\n]*{re.escape(saved[1])}", block[saved.end() :])
                assert removed, f"{guide.name}: {saved[0]!r} leaves {saved[1]} behind"


def test_the_deployer_lives_in_the_modules_folder() -> None:
    """Message Queue makes a queue in the folder of the account whose static key signs the request;
    yandex_message_queue has no folder_id (provider issue #547)."""
    guide = (MODULE / "README.md").read_text()
    commands = re.findall(r"yc iam service-account (?:create|get) [^\n]*", guide)
    assert commands
    for command in commands:
        assert "--folder-id <folder_id>" in command, command
    assert "github.com/yandex-cloud/terraform-provider-yandex/issues/547" in guide
    for _, name, queue in [r for r in resources() if r[0] == "yandex_message_queue"]:
        assert "folder_id" not in queue, name


def test_the_guide_names_the_gateways_size_cap() -> None:
    paragraphs = (MODULE / "README.md").read_text().split("\n\n")
    assert [text for text in paragraphs if "API Gateway" in text and "2.5 MB" in text]


# Checks the code makes that its settings model does not show (validators): setting, the variable
# behind it, and what that variable's rules must contain.
CHECKS_OUTSIDE_THE_SCHEMA = {
    "VECTOR_DB_CA_URL": ("vector_db_ca_url", ["^https://"]),
    "VECTOR_DB_DSN": ("vector_index", ["local.vector_db_dsn_is_url"]),
}


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def rules_for(variable: str, field: dict[str, Any]) -> list[list[str]]:
    """What a variable's validation must contain for the setting's constraints: each entry lists
    the accepted spellings of one rule."""
    constraints = dict(field)
    for option in field.get("anyOf", []):
        constraints |= option
    ref = f"var.{variable}"
    rules = []
    if "exclusiveMinimum" in constraints:
        rules.append([f"{ref} > {number(constraints['exclusiveMinimum'])}"])
    if "minimum" in constraints:
        rules.append([f"{ref} >= {number(constraints['minimum'])}"])
    if "maximum" in constraints:
        rules.append([f"{ref} <= {number(constraints['maximum'])}"])
    if "exclusiveMaximum" in constraints:
        rules.append([f"{ref} < {number(constraints['exclusiveMaximum'])}"])
    if "minLength" in constraints:
        least = constraints["minLength"]
        rules.append([f"length({ref}) >= {least}", f"length({ref}) > {least - 1}"])
    if "pattern" in constraints:
        rules.append([f'regex("{constraints["pattern"]}", {ref})'])
    if "enum" in constraints:
        rules += [[f'"{value}"'] for value in constraints["enum"]]
    if rules and constraints.get("type") == "integer":
        # The setting is parsed as an integer: 1.5 would pass plan and fail at cold start.
        rules.append([f"floor({ref}) == {ref}"])
    return rules


def test_every_setting_the_code_range_checks_is_validated_at_plan() -> None:
    """Derived from the settings model: each setting the module sets from a variable, and that the
    code checks (bounds, patterns, allowed values), has the same check in that variable's rules."""
    fields = Settings.model_json_schema()["properties"]
    checked = {}
    for setting, value in local_value("environment").items():
        variables = set(re.findall(r"(?<![\w.])var\.([a-z0-9_]+)", str(value)))
        if len(variables) != 1:
            continue
        (name,) = variables
        rules = rules_for(name, fields.get(setting.lower(), {}))
        if rules:
            checked[setting] = name
        conditions = validations_of(name)
        for spellings in rules:
            assert any(rule in conditions for rule in spellings), f"{name} ({setting}): no {spellings[0]}"
    for setting, (name, outside) in CHECKS_OUTSIDE_THE_SCHEMA.items():
        assert setting in function_environment()
        checked[setting] = name
        for rule in outside:
            assert rule in validations_of(name), f"{name} ({setting}): no rule {rule}"
    assert {
        "EMBEDDINGS_RPS",
        "EMBEDDINGS_CONCURRENCY",
        "CHUNK_MAX_TOKENS",
        "RECONCILE_PAGE_SIZE",
        "RECONCILE_MAX_TOKENS",
        "LOG_LEVEL",
        "DEPLOYMENT_NAME",
        "VECTOR_DB_TABLE",
        "OUTPUT_PREFIX",
    } <= set(checked), checked
    assert checked["DEPLOYMENT_NAME"] == "name"
    assert variable("vector_db_table")["default"] == Settings.model_fields["vector_db_table"].default


def test_secret_versions_the_functions_read_are_replaced_new_first() -> None:
    """A replaced version is destroyed (scheduled for destruction) after the functions moved to its
    successor, never before: every resource that makes a version the functions read says so."""
    references = json.dumps(local_value("secret_environment")) + local_value("vector_db_secret_environment")
    version_of = r"(yandex_[a-z0-9_]+)\.([a-z0-9_]+)(?:\[0\])?\.(?:id|output_to_lockbox_version_id)"
    found = re.findall(version_of, references)
    makers = {(kind, name) for kind, name in found if kind != "yandex_lockbox_secret"}
    assert makers == {
        ("yandex_lockbox_secret_version_hashed", "api_keys"),
        ("yandex_lockbox_secret_version_hashed", "vector_db"),
        ("yandex_iam_service_account_static_access_key", "queue_sender"),
    }
    for kind, name in makers:
        (lifecycle,) = resource(kind, name)["lifecycle"]
        assert lifecycle["create_before_destroy"] is True, f"{kind}.{name}"
    for kind, name, _ in resources():
        if kind in {"yandex_lockbox_secret_version", "yandex_lockbox_secret_version_hashed"}:
            assert (kind, name) in makers, f"{kind}.{name} is read by nothing"


# The custom metrics the functions write (service "custom", labels trigger and bucket).
METRICS_WRITTEN = {
    "documents_embedded",
    "documents_unchanged",
    "documents_parked",
    "api_requests",
    "tokens",
    "throttled",
    "retries",
    "reconcile_missing",
    "reconcile_stale",
    "reconcile_orphaned",
    "queue_continuations",
    "index_failures",
    "ocr_pages",
    "ocr_requests",
    "ocr_throttled",
}


def test_metrics_are_a_switch_with_the_narrowest_role() -> None:
    switch = variable("metrics")
    assert (switch["type"], switch["default"]) == ("bool", True)
    assert local_value("environment")["METRICS"] == "${tostring(var.metrics)}"
    if "metrics" in Settings.model_fields:
        assert Settings.model_fields["metrics"].default is True
    grant = resource("yandex_resourcemanager_folder_iam_member", "function_metrics")
    assert grant["count"] == "${var.metrics ? 1 : 0}"
    assert (grant["role"], grant["folder_id"]) == ("monitoring.editor", "${var.folder_id}")
    assert account_of(grant["member"].removeprefix("serviceAccount:")) == "function"
    # No other Monitoring or Monium role for anyone.
    roles = [body["role"] for _, _, body in resources() if "role" in body]
    assert [role for role in roles if role.startswith(("monitoring.", "monium."))] == ["monitoring.editor"]
    function = resource("yandex_function", "pipeline")
    assert "${yandex_resourcemanager_folder_iam_member.function_metrics}" in function["depends_on"]
    assert resource("yandex_monitoring_dashboard", "pipeline")["count"] == "${var.metrics ? 1 : 0}"


def test_the_dashboard_charts_every_metric() -> None:
    dashboard = resource("yandex_monitoring_dashboard", "pipeline")
    assert dashboard["folder_id"] == "${var.folder_id}"
    widgets = dynamic_block(dashboard, "widgets")
    assert widgets["for_each"] == "${local.metrics_charts}"
    (widget,) = widgets["content"]
    (chart,) = widget["chart"]
    (queries,) = chart["queries"]
    (downsampling,) = queries["downsampling"]
    # Each point is one invocation's count: summed per 5 minutes.
    assert downsampling["grid_aggregation"] == "GRID_AGGREGATION_SUM"
    assert downsampling["grid_interval"] == 300000
    target = dynamic_block(queries, "target")
    assert target["for_each"] == "${widgets.value.metrics}"
    (query,) = target["content"]
    assert query["text_mode"] is True
    template = query["query"].replace('\\"', '"')
    folder = "b1gfolderfolderfolder"
    charts = local_value("metrics_charts")
    charted = [metric for chart_spec in charts for metric in chart_spec["metrics"]]
    assert sorted(charted) == sorted(METRICS_WRITTEN)  # each once
    assert len({chart_spec["id"] for chart_spec in charts}) == len(charts) == 6
    for metric in charted:
        text = template.replace("${target.value}", metric).replace("${var.folder_id}", folder)
        assert "${" not in text, text
        assert f'{{folderId="{folder}", service="custom", name="{metric}"}}' in text
        assert text.startswith("alias(series_sum({")
        assert text.count("(") == text.count(")"), text
        assert text.count('"') % 2 == 0, text
    outputs = {name: body for item in MODULE_HCL["output"] for name, body in item.items()}
    assert "yandex_monitoring_dashboard.pipeline[*].dashboard_id" in outputs["metrics_dashboard_id"]["value"]
    assert "yandex_monitoring_dashboard.pipeline" in outputs["metrics_dashboard_url"]["value"]


def test_every_name_made_from_the_longest_allowed_name_fits_yandexs_63_characters() -> None:
    """Yandex names resources with at most 63 characters; `name` is the prefix of all of them."""
    variables = (MODULE / "variables.tf").read_text()
    rule = re.search(r'regex\("\^\[a-z\]\[a-z0-9-\]\{1,(\d+)\}\$", var\.name\)', variables)
    assert rule is not None
    longest = "a" * (1 + int(rule.group(1)))
    zone = "ru-central1-a"  # the keys of for_each over zones; the functions' keys are shorter
    made = {
        template.replace("${var.name}", longest).replace("${each.key}", zone)
        for path in MODULE.glob("*.tf")
        for template in re.findall(r'"(\$\{var\.name\}[^"]*)"', path.read_text())
    }
    assert made
    assert max(len(name) for name in made) <= 63, sorted(made, key=len)[-1]
