"""infra/terraform: the AWS topology is valid Terraform and keeps its security policy.

Two kinds of checks:

- the real tool, offline: ``terraform fmt -check``, then ``init`` against the
  local provider plugin directory and ``validate`` of the example environment,
  in a temporary copy (nothing is left in the checkout), plus the boot scripts
  rendered by ``templatefile`` and parsed by ``bash -n``;
- the policy, read from every ``.tf`` file with python-hcl2: encryption,
  backups, public exposure, secrets handling, logs and tags.  Each check names
  the resource that breaks it.

Terraform and the provider must be present (docs: infra/terraform/README.md):
a missing tool fails these tests, it never skips them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest

TF_ROOT = Path(__file__).resolve().parents[2] / "infra" / "terraform"
MODULES = TF_ROOT / "modules"
ECS_TASK = MODULES / "ecs_task"
EXAMPLE = TF_ROOT / "environments" / "example"
PROVIDER = ("registry.terraform.io", "hashicorp", "aws")
PROVIDER_VERSION = "5.100.0"
PLUGIN_DIR_CANDIDATES = (
    Path("/opt/tf-plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
    Path("/usr/share/terraform/plugins"),
    Path("/usr/local/share/terraform/plugins"),
)

# Credentials: only ever in `secrets`, never in a plain environment map.
SECRET_SETTINGS = {
    "KEFU_JWT_PRIVATE_KEY",
    "KEFU_DATABASE_URL",
    "KEFU_PLATFORM_DATABASE_URL",
    "KEFU_MIGRATION_DATABASE_URL",
    "KEFU_REDIS_URL",
    "KEFU_TURN_SECRET",
    "KEFU_STRIPE_API_KEY",
    "KEFU_STRIPE_WEBHOOK_SECRET",
    "KEFU_METRICS_TOKEN",
}
# What every production process needs to start (docs/configuration.md).
CORE_SECRETS = {
    "KEFU_DATABASE_URL",
    "KEFU_PLATFORM_DATABASE_URL",
    "KEFU_REDIS_URL",
    "KEFU_JWT_PRIVATE_KEY",
}

# Resource types of the AWS provider that take no `tags` argument (checked
# against the provider's schema by test_non_taggable_types_match_the_provider_schema).
NON_TAGGABLE = {
    "aws_appautoscaling_policy",
    "aws_autoscaling_policy",
    "aws_ecs_cluster_capacity_providers",
    "aws_iam_role_policy",
    "aws_iam_role_policy_attachment",
    "aws_kms_alias",
    "aws_route",
    "aws_route_table_association",
    "aws_s3_bucket_lifecycle_configuration",
    "aws_s3_bucket_ownership_controls",
    "aws_s3_bucket_policy",
    "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_server_side_encryption_configuration",
    "aws_s3_bucket_versioning",
    "aws_sns_topic_subscription",
}
# Tagged through `tag` blocks, which default_tags do not reach.
TAG_BLOCK_TYPES = {"aws_autoscaling_group"}

ANYWHERE = {"0.0.0.0/0", "::/0"}


# --- reading the configuration --------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    body: dict[str, Any]
    path: Path

    @property
    def module(self) -> Path:
        return self.path.parent

    def __str__(self) -> str:
        return f"{self.type}.{self.name} ({self.path.relative_to(TF_ROOT)})"


_OPTIONS = hcl2.SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)


@functools.cache
def parsed(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


def tf_files() -> list[Path]:
    files = sorted(p for p in TF_ROOT.rglob("*.tf") if ".terraform" not in p.parts)
    assert files, f"no .tf files under {TF_ROOT}"
    return files


def resources(type_: str | None = None) -> list[Resource]:
    found = []
    for path in tf_files():
        for entry in parsed(path).get("resource", []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    if type_ is None or rtype == type_:
                        found.append(Resource(rtype, name, body, path))
    return found


def data_sources(type_: str) -> list[Resource]:
    found = []
    for path in tf_files():
        for entry in parsed(path).get("data", []):
            for dtype, named in entry.items():
                for name, body in named.items():
                    if dtype == type_:
                        found.append(Resource(dtype, name, body, path))
    return found


def variables(module: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(module.glob("*.tf")):
        for entry in parsed(path).get("variable", []):
            found.update(entry)
    return found


def locals_of(module: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted(module.glob("*.tf")):
        for entry in parsed(path).get("locals", []):
            found.update(entry)
    return found


def module_calls() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for entry in parsed(EXAMPLE / "main.tf").get("module", []):
        found.update(entry)
    return found


def calls_in(module: Path) -> dict[str, dict[str, Any]]:
    """The module blocks of one module's folder, by name."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(module.glob("*.tf")):
        for entry in parsed(path).get("module", []):
            found.update(entry)
    return found


def ecs_task_calls() -> dict[str, dict[str, Any]]:
    """The calls of the internal ecs_task module, by the calling module's name."""
    found: dict[str, dict[str, Any]] = {}
    for module in sorted(p for p in MODULES.iterdir() if p.is_dir()):
        for call in calls_in(module).values():
            if Path(call["source"]).name == ECS_TASK.name:
                assert module.name not in found, f"{module.name}: one task per module"
                found[module.name] = call
    return found


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = body.get(name, [])
    return value if isinstance(value, list) else [value]


_VAR_REF = re.compile(r"^\$\{var\.([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+)*)\}$")
_REF = re.compile(r"^\$\{([a-z0-9_]+)\.([A-Za-z0-9_]+)\.(id|arn|bucket)\}$")


def resolve(value: Any, module: Path, each: dict[str, Any] | None = None) -> Any:
    """A literal as is; ``var.x`` (or ``var.x.field``) as the variable's default;
    ``each.value.field`` from the for_each entry.  Anything else stays an expression."""
    if not isinstance(value, str):
        return value
    if each is not None:
        match = re.fullmatch(r"\$\{each\.value\.([A-Za-z0-9_]+)\}", value)
        if match:
            return resolve(each[match.group(1)], module)
        if value == "${each.key}":
            return each["__key__"]
    match = _VAR_REF.match(value)
    if match:
        declared = variables(module).get(match.group(1))
        if declared is None or "default" not in declared:
            return value
        resolved = declared["default"]
        for field in filter(None, match.group(2).split(".")):
            resolved = resolved[field]
        return resolved
    return value


def expand_for_each(
    resource: Resource,
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each instance of a resource whose for_each is a literal map, with its entry."""
    for_each = resource.body.get("for_each")
    if isinstance(for_each, dict):
        for key, entry in for_each.items():
            yield (
                resource.body,
                {**entry, "__key__": key}
                if isinstance(entry, dict)
                else {"__key__": key},
            )
    else:
        yield resource.body, None


def referenced_name(expression: Any, type_: str) -> str | None:
    """``aws_s3_bucket.logs`` in ``${aws_s3_bucket.logs.id}`` -> ``logs``."""
    if not isinstance(expression, str):
        return None
    match = re.fullmatch(
        r"\$\{" + re.escape(type_) + r"\.([A-Za-z0-9_]+)\.(id|arn|bucket)\}", expression
    )
    return match.group(1) if match else None


def expand_locals(text: str, module: Path, depth: int = 0) -> str:
    """``text`` with every ``local.x`` it mentions appended (recursively)."""
    assert depth < 10, "local values refer to each other too deeply"
    values = locals_of(module)
    out = text
    for name in sorted(set(re.findall(r"local\.([A-Za-z0-9_]+)", text))):
        if name in values:
            out += "\n" + expand_locals(json.dumps(values[name]), module, depth + 1)
    return out


# --- the real tool, offline -------------------------------------------------------------------


def find_terraform() -> str:
    found = shutil.which("terraform") or (
        "/usr/local/bin/terraform"
        if os.access("/usr/local/bin/terraform", os.X_OK)
        else None
    )
    if not found:
        pytest.fail(
            "terraform is not installed (expected on PATH or at /usr/local/bin/terraform); see infra/terraform/README.md"
        )
    return found


def find_plugin_dir() -> Path:
    for candidate in PLUGIN_DIR_CANDIDATES:
        provider = candidate.joinpath(*PROVIDER, PROVIDER_VERSION)
        if any(provider.glob("*/terraform-provider-aws*")):
            return candidate
    looked = ", ".join(str(c) for c in PLUGIN_DIR_CANDIDATES)
    pytest.fail(
        f"the hashicorp/aws {PROVIDER_VERSION} provider is not in a local plugin directory (looked in {looked}); "
        "terraform init -plugin-dir needs it offline"
    )


def run(
    args: list[str], cwd: Path, timeout: int = 180, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
        "NO_COLOR": "1",
    }
    env.pop("TF_CLI_CONFIG_FILE", None)
    return subprocess.run(
        args,
        check=False,
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of infra/terraform without any .terraform folder or lock file."""
    copy = tmp_path_factory.mktemp("terraform") / "terraform"
    shutil.copytree(
        TF_ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".terraform", ".terraform.lock.hcl", "*.tfstate*"
        ),
    )
    return copy


@pytest.fixture(scope="module")
def initialized_example(workdir: Path) -> Path:
    terraform, plugins = find_terraform(), find_plugin_dir()
    example = workdir / "environments" / "example"
    init = run(
        [terraform, "init", "-backend=false", f"-plugin-dir={plugins}", "-no-color"],
        example,
    )
    assert init.returncode == 0, f"terraform init failed:\n{init.stdout}\n{init.stderr}"
    return example


def test_terraform_fmt_check_passes(workdir: Path) -> None:
    result = run(
        [find_terraform(), "fmt", "-check", "-recursive", "-diff", "-no-color"], workdir
    )
    assert result.returncode == 0, (
        f"terraform fmt would change these files:\n{result.stdout}{result.stderr}"
    )


def test_example_environment_validates_offline(initialized_example: Path) -> None:
    result = run([find_terraform(), "validate", "-no-color"], initialized_example)
    assert result.returncode == 0, (
        f"terraform validate failed:\n{result.stdout}\n{result.stderr}"
    )
    assert "Success" in result.stdout


def test_validation_ran_in_a_copy_not_the_checkout(initialized_example: Path) -> None:
    assert (initialized_example / ".terraform").is_dir()
    assert TF_ROOT not in initialized_example.parents


def test_non_taggable_types_match_the_provider_schema(
    initialized_example: Path,
) -> None:
    result = run(
        [find_terraform(), "providers", "schema", "-json"], initialized_example
    )
    assert result.returncode == 0, result.stderr
    schemas = json.loads(result.stdout)["provider_schemas"]["/".join(PROVIDER)][
        "resource_schemas"
    ]
    used = {r.type for r in resources()}
    for rtype in sorted(used):
        has_tags = "tags" in schemas[rtype]["block"].get("attributes", {})
        if rtype in NON_TAGGABLE or rtype in TAG_BLOCK_TYPES:
            assert not has_tags, (
                f"{rtype} takes tags: remove it from the exempt list and tag it"
            )
        else:
            assert has_tags, f"{rtype} takes no tags: add it to NON_TAGGABLE"


def render_template(template: Path, variables_hcl: str, tmp_path: Path) -> str:
    """Render a templatefile() the way Terraform does, in an empty folder (no provider needed)."""
    folder = tmp_path / template.parent.name
    folder.mkdir()
    shutil.copy(template, folder / template.name)
    result = run(
        [find_terraform(), "console"],
        folder,
        stdin=f'templatefile("{template.name}", {variables_hcl})\n',
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout.strip()
    assert text.startswith("<<EOT") and text.endswith("EOT"), text[:200]
    return text[len("<<EOT") : -len("EOT")]


def assert_valid_shell(script: str) -> None:
    """The boot script and the start script it writes (a quoted here-document) both parse."""
    inner = re.findall(r"<<'SCRIPT'\n(.*?)\nSCRIPT\n", script, flags=re.DOTALL)
    assert inner, "the boot script must write a start script"
    for text in [script, *inner]:
        checked = subprocess.run(
            ["bash", "-n"], check=False, input=text, capture_output=True, text=True
        )
        assert checked.returncode == 0, f"{checked.stderr}\n{text}"


def test_media_boot_script_renders_to_valid_shell_with_the_instance_id_as_node_id(
    tmp_path: Path,
) -> None:
    script = render_template(
        MODULES / "media" / "user_data.sh.tftpl",
        '{ region = "eu-west-1", image = "1.dkr.ecr.eu-west-1.amazonaws.com/kefu:1", '
        'environment = { KEFU_MODE = "production", KEFU_PORT = "8101" }, '
        'secrets = { KEFU_REDIS_URL = "arn:redis", KEFU_JWT_PRIVATE_KEY = "arn:jwt" }, '
        'log_group_name = "/kefu/x/media", port_from = 40000, port_to = 60999 }',
        tmp_path,
    )
    assert_valid_shell(script)
    assert "net.ipv4.ip_local_port_range = 40000 60999" in script
    assert re.search(r"export KEFU_NODE_ID=.*meta-data/instance-id", script)
    assert "--secret-id 'arn:jwt'" in script and "-e KEFU_JWT_PRIVATE_KEY" in script
    assert "kefu media" in script
    # The plain settings file holds no credential.
    env_file = script.split("<<'ENV'", 1)[1].split("\nENV\n", 1)[0]
    assert not SECRET_SETTINGS & {line.split("=", 1)[0] for line in env_file.split()}


def test_coturn_boot_script_renders_to_valid_shell_with_the_shared_secret(
    tmp_path: Path,
) -> None:
    script = render_template(
        MODULES / "coturn" / "user_data.sh.tftpl",
        '{ region = "eu-west-1", image = "coturn/coturn:4.6", realm = "turn.example.com", min_port = 49152, '
        'max_port = 65535, turn_secret_arn = "arn:turn", log_group_name = "/kefu/x/coturn" }',
        tmp_path,
    )
    assert_valid_shell(script)
    for line in (
        "use-auth-secret",
        "static-auth-secret=$secret",
        "min-port=49152",
        "max-port=65535",
        "no-tcp-relay",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        "external-ip=$public_ip/$private_ip",
    ):
        assert line in script, line
    assert "--secret-id 'arn:turn'" in script
    assert "--version-stage AWSPREVIOUS" in script, (
        "the previous TURN secret stays valid during a rotation"
    )


# --- versions and provider --------------------------------------------------------------------


def test_versions_pin_the_aws_provider_exactly_and_terraform_from_1_5() -> None:
    [terraform] = parsed(EXAMPLE / "versions.tf")["terraform"]
    assert terraform["required_version"] == ">= 1.5"
    [providers] = terraform["required_providers"]
    assert providers["aws"] == {"source": "hashicorp/aws", "version": PROVIDER_VERSION}


def test_provider_default_tags_carry_the_environment() -> None:
    providers = [
        p["aws"]
        for path in tf_files()
        for p in parsed(path).get("provider", [])
        if "aws" in p
    ]
    assert providers, "no aws provider block"
    for provider in providers:
        [default_tags] = blocks(provider, "default_tags")
        assert default_tags["tags"]["Environment"] == "${var.environment}"


def test_only_the_environment_configures_providers() -> None:
    for path in tf_files():
        if MODULES in path.parents:
            assert "provider" not in parsed(path), (
                f"{path}: modules take their provider from the caller"
            )


# --- PostgreSQL ----------------------------------------------------------------------------------


def rds_instances() -> tuple[list[Resource], list[Resource]]:
    instances = resources("aws_db_instance")
    assert instances, "no aws_db_instance"
    primaries = [r for r in instances if "replicate_source_db" not in r.body]
    replicas = [r for r in instances if "replicate_source_db" in r.body]
    assert primaries, "no primary database"
    return primaries, replicas


def test_every_database_instance_is_encrypted_private_and_protected() -> None:
    primaries, replicas = rds_instances()
    for db in primaries + replicas:
        assert resolve(db.body.get("storage_encrypted"), db.module) is True, (
            f"{db}: storage_encrypted"
        )
        assert "kms_key_id" in db.body, f"{db}: storage must use a KMS key"
        assert resolve(db.body.get("publicly_accessible"), db.module) is False, (
            f"{db}: publicly_accessible"
        )
        assert resolve(db.body.get("deletion_protection"), db.module) is True, (
            f"{db}: deletion_protection"
        )


def test_primary_database_is_multi_az_with_backups_and_a_final_snapshot() -> None:
    primaries, _ = rds_instances()
    for db in primaries:
        assert resolve(db.body.get("multi_az"), db.module) is True, f"{db}: multi_az"
        assert resolve(db.body.get("skip_final_snapshot"), db.module) is False, (
            f"{db}: skip_final_snapshot"
        )
        assert db.body.get("final_snapshot_identifier"), (
            f"{db}: final_snapshot_identifier"
        )
        retention = db.body.get("backup_retention_period")
        assert resolve(retention, db.module) >= 7, (
            f"{db}: backup_retention_period below 7"
        )
        match = _VAR_REF.match(str(retention))
        if match:  # a variable: callers cannot go below 7 either
            conditions = [
                v["condition"]
                for v in blocks(variables(db.module)[match.group(1)], "validation")
            ]
            assert any(
                re.search(rf"var\.{match.group(1)}\s*>=\s*([7-9]|\d\d+)\b", c)
                for c in conditions
            ), f"{db}: no validation >= 7"


def test_database_parameter_group_forces_ssl_and_is_used() -> None:
    groups = resources("aws_db_parameter_group")
    assert groups
    for group in groups:
        params = {p["name"]: str(p["value"]) for p in blocks(group.body, "parameter")}
        assert params.get("rds.force_ssl") == "1", f"{group}: rds.force_ssl"
    primaries, replicas = rds_instances()
    for db in primaries + replicas:
        assert referenced_name(
            db.body.get("parameter_group_name", "").replace(".name}", ".id}"),
            "aws_db_parameter_group",
        ), f"{db}: must use the SSL-forcing parameter group"


def test_database_takes_connections_only_from_security_groups() -> None:
    module = MODULES / "database"
    rules = [
        r
        for r in resources("aws_vpc_security_group_ingress_rule")
        if r.module == module
    ]
    assert rules
    for rule in rules:
        assert rule.body.get("referenced_security_group_id"), (
            f"{rule}: only Kefu's security groups may connect"
        )
        assert "cidr_ipv4" not in rule.body and "cidr_ipv6" not in rule.body, str(rule)
        assert (rule.body["from_port"], rule.body["to_port"]) == (5432, 5432)


def test_master_password_is_managed_in_secrets_manager() -> None:
    primaries, _ = rds_instances()
    for db in primaries:
        assert db.body.get("manage_master_user_password") is True, (
            f"{db}: no password in Terraform"
        )
        assert "password" not in db.body


# --- Redis ---------------------------------------------------------------------------------------


def test_redis_is_encrypted_authenticated_and_fails_over() -> None:
    groups = resources("aws_elasticache_replication_group")
    assert groups, "no aws_elasticache_replication_group"
    for group in groups:
        body = group.body
        assert resolve(body.get("at_rest_encryption_enabled"), group.module) is True, (
            f"{group}: at-rest encryption"
        )
        assert resolve(body.get("transit_encryption_enabled"), group.module) is True, (
            f"{group}: in-transit encryption"
        )
        assert "kms_key_id" in body, f"{group}: at-rest encryption with a KMS key"
        assert resolve(body.get("automatic_failover_enabled"), group.module) is True, (
            f"{group}: automatic failover"
        )
        assert resolve(body.get("multi_az_enabled"), group.module) is True, (
            f"{group}: multi-AZ"
        )
        assert "secretsmanager_secret_version" in str(body.get("auth_token")), (
            f"{group}: AUTH token from Secrets Manager"
        )
    for cluster in resources("aws_elasticache_cluster"):
        assert "replication_group_id" in cluster.body, (
            f"{cluster}: stand-alone clusters are not encrypted in transit"
        )


def test_redis_takes_connections_only_from_security_groups() -> None:
    module = MODULES / "redis"
    rules = [
        r
        for r in resources("aws_vpc_security_group_ingress_rule")
        if r.module == module
    ]
    assert rules
    for rule in rules:
        assert rule.body.get("referenced_security_group_id"), str(rule)
        assert "cidr_ipv4" not in rule.body and "cidr_ipv6" not in rule.body, str(rule)


# --- S3 ------------------------------------------------------------------------------------------


def bucket_settings(type_: str) -> dict[str, Resource]:
    """Per-bucket configuration resources, keyed by the bucket resource's name."""
    found = {}
    for resource in resources(type_):
        name = referenced_name(resource.body.get("bucket"), "aws_s3_bucket")
        assert name, (
            f"{resource}: bucket must reference an aws_s3_bucket in the same module"
        )
        found[f"{resource.module}:{name}"] = resource
    return found


def buckets() -> list[Resource]:
    found = resources("aws_s3_bucket")
    assert len(found) >= 2, "expected the recordings and the access-log buckets"
    return found


def key(bucket: Resource) -> str:
    return f"{bucket.module}:{bucket.name}"


def setting_for(settings: dict[str, Resource], bucket: Resource, what: str) -> Resource:
    """The bucket's configuration resource, existing exactly when the bucket does."""
    setting = settings.get(key(bucket))
    assert setting, f"{bucket}: no {what}"
    for meta in ("count", "for_each"):
        assert setting.body.get(meta) == bucket.body.get(meta), (
            f"{setting}: {meta} differs from its bucket's"
        )
    return setting


def test_every_bucket_blocks_all_public_access() -> None:
    blocks_by_bucket = bucket_settings("aws_s3_bucket_public_access_block")
    for bucket in buckets():
        block = setting_for(
            blocks_by_bucket, bucket, "aws_s3_bucket_public_access_block"
        )
        for flag in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        ):
            assert block.body.get(flag) is True, f"{block}: {flag} must be true"


def test_every_bucket_is_encrypted_owner_enforced_and_tls_only() -> None:
    encryption = bucket_settings("aws_s3_bucket_server_side_encryption_configuration")
    ownership = bucket_settings("aws_s3_bucket_ownership_controls")
    policies = bucket_settings("aws_s3_bucket_policy")
    for bucket in buckets():
        config = setting_for(encryption, bucket, "server-side encryption configuration")
        [rule] = blocks(config.body, "rule")
        [default] = blocks(rule, "apply_server_side_encryption_by_default")
        assert default["sse_algorithm"] in ("aws:kms", "AES256"), str(config)
        [controls] = blocks(
            setting_for(ownership, bucket, "ownership controls").body, "rule"
        )
        assert controls["object_ownership"] == "BucketOwnerEnforced", (
            f"{bucket}: ACLs must be off"
        )

        policy = setting_for(policies, bucket, "bucket policy")
        document_name = re.fullmatch(
            r"\$\{data\.aws_iam_policy_document\.([a-z0-9_]+)\.json\}",
            policy.body["policy"],
        )
        assert document_name, (
            f"{policy}: policy must come from an aws_iam_policy_document"
        )
        [document] = [
            d
            for d in data_sources("aws_iam_policy_document")
            if d.module == bucket.module and d.name == document_name.group(1)
        ]
        denies_plain_http = any(
            statement.get("effect") == "Deny"
            and any(
                c["variable"] == "aws:SecureTransport" and c["values"] == ["false"]
                for c in blocks(statement, "condition")
            )
            for statement in blocks(document.body, "statement")
        )
        assert denies_plain_http, (
            f"{bucket}: the bucket policy must deny requests without TLS"
        )


def recordings_bucket() -> Resource:
    [bucket] = [b for b in buckets() if b.module == MODULES / "recordings"]
    return bucket


def test_recordings_bucket_uses_kms_versioning_and_lifecycle_rules() -> None:
    bucket = recordings_bucket()
    [config] = [
        r
        for r in resources("aws_s3_bucket_server_side_encryption_configuration")
        if r.module == bucket.module
    ]
    [rule] = blocks(config.body, "rule")
    [default] = blocks(rule, "apply_server_side_encryption_by_default")
    assert default["sse_algorithm"] == "aws:kms"
    assert referenced_name(default.get("kms_master_key_id"), "aws_kms_key"), (
        "a customer-managed key"
    )

    versioning = bucket_settings("aws_s3_bucket_versioning")[key(bucket)]
    [versioning_config] = blocks(versioning.body, "versioning_configuration")
    assert versioning_config["status"] == "Enabled"

    lifecycle = bucket_settings("aws_s3_bucket_lifecycle_configuration")[key(bucket)]
    rules = blocks(lifecycle.body, "rule")
    enabled = [r for r in rules if r.get("status") == "Enabled"]
    assert enabled, "no enabled lifecycle rule"
    assert any(blocks(r, "transition") for r in enabled), (
        "recordings must move to cheaper storage"
    )
    assert any(blocks(r, "noncurrent_version_expiration") for r in enabled), (
        "old versions must expire"
    )
    assert any(blocks(r, "abort_incomplete_multipart_upload") for r in enabled)


def test_recordings_access_is_limited_to_the_prefix() -> None:
    [document] = [
        d
        for d in data_sources("aws_iam_policy_document")
        if d.module == MODULES / "recordings" and d.name == "read_write"
    ]
    for statement in blocks(document.body, "statement"):
        for resource in statement["resources"]:
            if "s3:GetObject" in statement["actions"]:
                assert resource.endswith("/${var.prefix}*"), resource
        if "s3:ListBucket" in statement["actions"]:
            assert any(
                c["variable"] == "s3:prefix" for c in blocks(statement, "condition")
            )


# --- network exposure ------------------------------------------------------------------------------


def ingress_rules() -> Iterator[tuple[Resource, str, Any, Any, list[str]]]:
    """(resource, protocol, from, to, CIDRs) for every ingress rule, in every style."""
    for rule in resources("aws_vpc_security_group_ingress_rule"):
        for body, each in expand_for_each(rule):
            cidrs = [
                resolve(body.get(k), rule.module, each)
                for k in ("cidr_ipv4", "cidr_ipv6")
                if k in body
            ]
            yield (
                rule,
                str(resolve(body["ip_protocol"], rule.module, each)),
                resolve(body.get("from_port"), rule.module, each),
                resolve(body.get("to_port"), rule.module, each),
                cidrs,
            )
    for rule in resources("aws_security_group_rule"):
        if rule.body.get("type") == "ingress":
            yield (
                rule,
                str(rule.body["protocol"]),
                resolve(rule.body["from_port"], rule.module),
                resolve(rule.body["to_port"], rule.module),
                list(rule.body.get("cidr_blocks", []))
                + list(rule.body.get("ipv6_cidr_blocks", [])),
            )
    for group in resources("aws_security_group") + resources(
        "aws_default_security_group"
    ):
        for inline in blocks(group.body, "ingress"):
            yield (
                group,
                str(inline["protocol"]),
                resolve(inline["from_port"], group.module),
                resolve(inline["to_port"], group.module),
                list(inline.get("cidr_blocks", []))
                + list(inline.get("ipv6_cidr_blocks", [])),
            )


def allowed_public_ingress() -> set[tuple[str, int, int]]:
    media = variables(MODULES / "media")["rtp_port_range"]["default"]
    relay = variables(MODULES / "coturn")["relay_port_range"]["default"]
    return {
        ("tcp", 80, 80),
        ("tcp", 443, 443),
        ("udp", media["from"], media["to"]),
        ("udp", 3478, 3478),
        ("tcp", 3478, 3478),
        ("udp", relay["from"], relay["to"]),
    }


def test_public_udp_ranges_stay_in_high_ports() -> None:
    # The media RTP range and coturn's relay range are open to the world: they
    # must stay clear of well-known and service ports.
    for module, variable in (
        ("media", "rtp_port_range"),
        ("coturn", "relay_port_range"),
    ):
        ports = variables(MODULES / module)[variable]["default"]
        assert 32768 <= ports["from"] < ports["to"] <= 65535, (
            f"{module}.{variable}: {ports}"
        )


def may_be_public(cidr: Any) -> bool:
    """The world, or an expression not known to be the VPC's own range."""
    if not isinstance(cidr, str):
        return True
    if cidr.startswith("${"):
        return cidr != "${var.vpc_cidr_block}"
    return cidr in ANYWHERE


def test_public_ingress_is_only_web_rtp_and_turn() -> None:
    allowed = allowed_public_ingress()
    public = []
    for rule, protocol, from_port, to_port, cidrs in ingress_rules():
        if any(may_be_public(c) for c in cidrs):
            assert all(isinstance(p, int) for p in (from_port, to_port)), (
                f"{rule}: public ports must resolve to numbers"
            )
            assert (protocol, from_port, to_port) in allowed, (
                f"{rule}: {protocol} {from_port}-{to_port} must not be open to the world"
            )
            public.append((protocol, from_port, to_port))
    assert set(public) == allowed, (
        f"expected exactly these public openings: {sorted(allowed)}, found {sorted(set(public))}"
    )


def test_databases_redis_health_and_ssh_are_never_public() -> None:
    health = variables(MODULES / "media")["health_port"]["default"]
    for rule, protocol, from_port, to_port, cidrs in ingress_rules():
        if any(c in ANYWHERE for c in cidrs):
            for port in (5432, 6379, health, 22, 8000):
                assert not (
                    protocol in ("tcp", "-1", "all") and from_port <= port <= to_port
                ), f"{rule}: port {port} public"


def test_media_health_port_is_open_to_the_vpc_only() -> None:
    health = variables(MODULES / "media")["health_port"]["default"]
    rules = [
        (r, p, f, t, c)
        for r, p, f, t, c in ingress_rules()
        if r.module == MODULES / "media" and f == health
    ]
    assert rules, "media nodes need their /health port reachable inside the VPC"
    for rule, protocol, _, _, cidrs in rules:
        assert protocol == "tcp" and cidrs == ["${var.vpc_cidr_block}"], (
            f"{rule}: /health from the VPC only"
        )


def test_api_containers_are_reachable_from_the_alb_only() -> None:
    rules = [
        r
        for r in resources("aws_vpc_security_group_ingress_rule")
        if r.module == MODULES / "api"
    ]
    assert rules
    for rule in rules:
        assert (
            rule.body.get("referenced_security_group_id")
            == "${var.alb_security_group_id}"
        ), str(rule)


def test_nothing_uses_the_default_security_group() -> None:
    for group in resources("aws_default_security_group"):
        assert not blocks(group.body, "ingress") and not blocks(group.body, "egress"), (
            f"{group}: must stay empty"
        )


def test_subnets_do_not_give_public_addresses_by_default() -> None:
    for subnet in resources("aws_subnet"):
        assert subnet.body.get("map_public_ip_on_launch", False) is False, str(subnet)


def test_network_spans_two_or_more_availability_zones_with_nat() -> None:
    declared = variables(MODULES / "network")["availability_zones"]
    assert any(">= 2" in v["condition"] for v in blocks(declared, "validation"))
    assert resources("aws_nat_gateway") and resources("aws_internet_gateway")


# --- ALB -----------------------------------------------------------------------------------------------


def test_alb_redirects_http_and_serves_https_with_the_certificate_variable() -> None:
    listeners = {r.name: r.body for r in resources("aws_lb_listener")}
    http, https = listeners["http"], listeners["https"]
    assert (http["port"], http["protocol"]) == (80, "HTTP")
    [action] = blocks(http, "default_action")
    [redirect] = blocks(action, "redirect")
    assert (
        action["type"] == "redirect"
        and redirect["protocol"] == "HTTPS"
        and str(redirect["port"]) == "443"
    )
    assert (https["port"], https["protocol"]) == (443, "HTTPS")
    assert https["certificate_arn"] == "${var.certificate_arn}"
    assert "TLS13" in resolve(https["ssl_policy"], MODULES / "loadbalancer")


def test_alb_checks_liveness_and_logs_to_its_bucket() -> None:
    # ECS replaces a target the ALB finds unhealthy: the check must be /health (process-local),
    # never /ready, which fails on every replica together while PostgreSQL or Redis is down.
    [group] = resources("aws_lb_target_group")
    [check] = blocks(group.body, "health_check")
    assert resolve(check["path"], group.module) == "/health"
    assert module_calls()["loadbalancer"].get("health_check_path", "/health") == "/health"
    [alb] = resources("aws_lb")
    [logs] = blocks(alb.body, "access_logs")
    assert logs["enabled"] is True and referenced_name(logs["bucket"], "aws_s3_bucket")
    assert alb.body.get("drop_invalid_header_fields") is True


# --- ECS, secrets ---------------------------------------------------------------------------------------


def container_of(task: Resource) -> dict[str, Any]:
    """The container's own fields: a local, merged last (it wins) over the
    caller's extra settings, if any."""
    match = re.fullmatch(
        r"\$\{jsonencode\(\[(?:merge\(var\.container_settings, )?"
        r"local\.([A-Za-z0-9_]+)\)?\]\)\}",
        task.body["container_definitions"],
    )
    assert match, (
        f"{task}: container_definitions must be jsonencode([local.<container>])"
        " or jsonencode([merge(var.container_settings, local.<container>)])"
    )
    return locals_of(task.module)[match.group(1)]


def test_ecs_task_definitions_take_credentials_through_secrets() -> None:
    tasks = resources("aws_ecs_task_definition")
    assert tasks and {t.module for t in tasks} == {ECS_TASK}, (
        "ECS task definitions are made by modules/ecs_task only"
    )
    for task in tasks:
        container = container_of(task)
        assert (
            "valueFrom" in container["secrets"]
            and "var.secrets" in container["secrets"]
        ), f"{task}: secrets from var.secrets"
        assert "var.secrets" not in expand_locals(
            container["environment"], task.module
        ), f"{task}: secrets in environment"
        for name in SECRET_SETTINGS:
            assert name not in json.dumps(container), (
                f"{task}: {name} written into the container definition"
            )
        # Callers cannot pass a credential as a plain value.
        declared = variables(task.module)["environment_variables"]
        conditions = " ".join(v["condition"] for v in blocks(declared, "validation"))
        missing = {name for name in SECRET_SETTINGS if name not in conditions}
        assert not missing, (
            f"{task.module.name}: environment_variables validation must refuse {sorted(missing)}"
        )
    # The API, the workers and the migration hand their callers' credentials
    # over as secrets, and their plain settings to the validated variable.
    calls = ecs_task_calls()
    assert set(calls) == {"api", "workers", "ecs_cluster"}
    for module, call in calls.items():
        assert call["secrets"] == "${var.secrets}", f"{module}: secrets = var.secrets"
        environment = expand_locals(
            json.dumps(call["environment_variables"]), MODULES / module
        )
        assert "var.environment_variables" in environment, (
            f"{module}: its environment_variables must go through ecs_task's validation"
        )
        assert "var.secrets" not in environment, f"{module}: secrets in environment"
        for name in SECRET_SETTINGS:
            assert name not in json.dumps(call), (
                f"{module}: {name} written into the task's settings"
            )


def test_example_passes_credentials_only_as_secrets() -> None:
    calls = module_calls()
    for name, call in calls.items():
        if "environment_variables" in call:
            text = expand_locals(json.dumps(call["environment_variables"]), EXAMPLE)
            leaked = {s for s in SECRET_SETTINGS if s in text}
            assert not leaked, (
                f"module {name}: {sorted(leaked)} passed as plain environment"
            )
    for name in ("api", "workers", "ecs_cluster"):
        secrets = expand_locals(json.dumps(calls[name]["secrets"]), EXAMPLE)
        missing = {s for s in CORE_SECRETS if s not in secrets}
        assert not missing, f"module {name}: {sorted(missing)} missing from secrets"
    assert "KEFU_MIGRATION_DATABASE_URL" in json.dumps(calls["ecs_cluster"]["secrets"])
    assert "KEFU_MIGRATION_DATABASE_URL" not in expand_locals(
        json.dumps(calls["api"]["secrets"]), EXAMPLE
    )
    assert "KEFU_TURN_SECRET" in json.dumps(calls["api"]["secrets"])


def test_media_nodes_get_no_database_credentials() -> None:
    call = module_calls()["media"]
    text = expand_locals(json.dumps(call["secrets"]), EXAMPLE)
    assert "KEFU_DATABASE_URL" not in text and "KEFU_PLATFORM_DATABASE_URL" not in text
    placeholders = locals_of(MODULES / "media")["database_placeholders"]
    assert "database.invalid" in placeholders, (
        "the placeholder must point at the reserved .invalid domain"
    )


def test_secrets_manager_holds_every_credential_encrypted_with_a_customer_key() -> None:
    [secret] = resources("aws_secretsmanager_secret")
    assert referenced_name(secret.body["kms_key_id"], "aws_kms_key")
    declared = locals_of(MODULES / "secrets")["secrets"]
    for needed in (
        "jwt_private_key",
        "database_url",
        "platform_database_url",
        "migration_database_url",
        "redis_auth_token",
        "redis_url",
        "turn_secret",
        "stripe_api_key",
    ):
        assert needed in declared, needed
    assert not resources("aws_secretsmanager_secret_version"), (
        "secret values are put by an operator, never kept in state"
    )


def test_services_command_the_right_kefu_processes() -> None:
    for task in resources("aws_ecs_task_definition"):
        assert container_of(task)["command"] == "${var.command}", str(task)
    commands = {module: call["command"] for module, call in ecs_task_calls().items()}
    assert commands == {
        "api": ["kefu", "api"],
        "workers": ["kefu", "worker"],
        "ecs_cluster": ["kefu", "db", "upgrade"],
    }
    for service in resources("aws_ecs_service"):
        [network] = blocks(service.body, "network_configuration")
        assert network["assign_public_ip"] is False, str(service)


def test_api_and_workers_autoscale() -> None:
    metrics: dict[str, set[str]] = {}
    for policy in resources("aws_appautoscaling_policy"):
        [config] = blocks(policy.body, "target_tracking_scaling_policy_configuration")
        for spec in blocks(config, "predefined_metric_specification"):
            metrics.setdefault(policy.module.name, set()).add(
                spec["predefined_metric_type"]
            )
    assert metrics["api"] >= {
        "ECSServiceAverageCPUUtilization",
        "ALBRequestCountPerTarget",
    }
    assert "ECSServiceAverageCPUUtilization" in metrics["workers"]


def test_media_nodes_autoscale_with_public_addresses_and_imdsv2() -> None:
    [template] = resources("aws_launch_template")
    [interface] = blocks(template.body, "network_interfaces")
    assert interface["associate_public_ip_address"] is True
    [metadata] = blocks(template.body, "metadata_options")
    assert metadata["http_tokens"] == "required"
    for device in blocks(template.body, "block_device_mappings"):
        assert all(ebs["encrypted"] is True for ebs in blocks(device, "ebs"))
    [group] = resources("aws_autoscaling_group")
    assert any(p.module == group.module for p in resources("aws_autoscaling_policy"))


# --- logs, keys, IAM, tags -----------------------------------------------------------------------------------


def test_log_groups_have_retention_and_kms() -> None:
    groups = resources("aws_cloudwatch_log_group")
    assert groups
    for group in groups:
        retention = resolve(group.body.get("retention_in_days"), group.module)
        assert isinstance(retention, int) and retention > 0, (
            f"{group}: retention_in_days"
        )
        assert referenced_name(group.body.get("kms_key_id"), "aws_kms_key"), (
            f"{group}: kms_key_id"
        )


def test_kms_keys_rotate() -> None:
    keys = resources("aws_kms_key")
    assert len(keys) >= 4
    for kms in keys:
        assert kms.body.get("enable_key_rotation") is True, str(kms)


def alarm_kinds(alarm: Resource) -> list[dict[str, Any]]:
    """What an alarm resource watches: its own namespace and metric, or, when it
    is generated from the module's ``alarm_kinds``, those of every kind."""
    if alarm.body.get("namespace") != "${each.value.namespace}":
        return [alarm.body]
    assert alarm.body["metric_name"] == "${each.value.metric_name}", str(alarm)
    assert alarm.body.get("for_each") == "${local.alarms}", str(alarm)
    found = locals_of(alarm.module)
    # One alarm for every target of every kind.
    generated = re.search(
        r"for \w+, (\w+) in local\.alarm_kinds\s*:.*\bfor \w+, \w+ in \1\.targets\s*:",
        found["alarms"],
        flags=re.DOTALL,
    )
    assert generated, (
        f"{alarm}: local.alarms must hold every target of every local.alarm_kinds"
    )
    kinds = found["alarm_kinds"]
    for name, kind in kinds.items():
        assert kind.get("targets"), f"{alarm}: alarm kind {name} watches nothing"
    return list(kinds.values())


def test_alarms_cover_the_topology_and_notify_the_topic() -> None:
    metrics = set()
    for alarm in resources("aws_cloudwatch_metric_alarm"):
        assert alarm.body.get("alarm_actions") == "${local.actions}", (
            f"{alarm}: must notify the SNS topic"
        )
        for kind in alarm_kinds(alarm):
            metrics.add((kind["namespace"], kind["metric_name"]))
    assert metrics >= {
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
        ("AWS/ApplicationELB", "TargetResponseTime"),
        ("AWS/RDS", "CPUUtilization"),
        ("AWS/RDS", "FreeStorageSpace"),
        ("AWS/ElastiCache", "DatabaseMemoryUsagePercentage"),
        ("AWS/ElastiCache", "EngineCPUUtilization"),
        ("AWS/ECS", "CPUUtilization"),
        ("AWS/EC2", "CPUUtilization"),
    }
    [topic] = resources("aws_sns_topic")
    assert referenced_name(topic.body.get("kms_master_key_id"), "aws_kms_key")


def test_iam_allows_no_wildcard_actions() -> None:
    for document in data_sources("aws_iam_policy_document"):
        for statement in blocks(document.body, "statement"):
            if statement.get("effect", "Allow") != "Allow":
                continue
            # A key policy's statement giving the account itself administration of the key.
            account_root = any(
                ":root" in str(p["identifiers"])
                for p in blocks(statement, "principals")
            )
            for action in statement.get("actions", []):
                if account_root and action == "kms:*":
                    continue
                assert action != "*" and not action.endswith(":*"), (
                    f"{document}: allows {action}"
                )


def test_every_taggable_resource_is_tagged_from_the_tags_variable() -> None:
    for resource in resources():
        if resource.type in NON_TAGGABLE:
            continue
        if resource.type in TAG_BLOCK_TYPES:
            dynamic = [d["tag"] for d in blocks(resource.body, "dynamic") if "tag" in d]
            assert dynamic and "var.tags" in dynamic[0]["for_each"], (
                f"{resource}: tag blocks from var.tags"
            )
            assert dynamic[0]["content"][0]["propagate_at_launch"] is True
            continue
        tags = resource.body.get("tags")
        assert tags is not None, f"{resource}: no tags"
        source = "local.tags" if resource.module == EXAMPLE else "var.tags"
        assert source in str(tags), f"{resource}: tags must include {source}"


def test_launch_templates_tag_what_they_launch() -> None:
    for template in resources("aws_launch_template"):
        kinds = {
            spec["resource_type"]: spec["tags"]
            for spec in blocks(template.body, "tag_specifications")
        }
        assert {"instance", "volume"} <= set(kinds), str(template)
        assert all("var.tags" in tags for tags in kinds.values())


def test_every_module_takes_tags_and_the_example_passes_the_environment() -> None:
    modules = sorted(p for p in MODULES.iterdir() if p.is_dir())
    assert {m.name for m in modules} >= {
        "network",
        "database",
        "redis",
        "recordings",
        "api",
        "workers",
        "media",
        "coturn",
        "observability",
        "secrets",
    }
    for module in modules:
        for required in ("main.tf", "variables.tf", "outputs.tf"):
            assert (module / required).is_file(), f"{module.name}/{required}"
        assert variables(module).get("tags", {}).get("type") == "${map(string)}", (
            f"{module.name}: tags variable"
        )
    calls = module_calls()
    # Internal modules (ecs_task) are called by other modules, with their tags.
    internal = {m: calls_in(m) for m in modules}
    assert {Path(c["source"]).name for c in calls.values()} | {
        Path(c["source"]).name for found in internal.values() for c in found.values()
    } == {m.name for m in modules}, "every module is used"
    for name, call in calls.items():
        assert call.get("tags") == "${local.tags}", f"module {name}: tags = local.tags"
    for module, found in internal.items():
        for name, call in found.items():
            assert call.get("tags") == "${var.tags}", (
                f"{module.name}: module {name}: tags = var.tags"
            )
    assert locals_of(EXAMPLE)["tags"]["Environment"] == "${var.environment}"
