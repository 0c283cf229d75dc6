"""The config model rejects bad settings with one line per problem, naming the key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.config.azure import MAX_CONNECTED_REGISTRY_NAME
from components.config.fields import BOOL_EXPECTED, ConfigError
from components.config.loading import load_site_config
from components.config.site import SiteConfig

SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
#: A fixed test host key (ssh-keygen -t ed25519, generated once). Every node that is not gone pins
#: one (issue 20); ``with_`` gives it to every node written without ``hostKey`` or ``gone``, so
#: each test here is about its own rule (the hostKey rule: tests/test_host_keys.py).
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpjKkb3qKVnCuHkw04o7TNs3j5JNk/rgmaUd0Bh5ug2"
KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:6443'}\n"
    "contexts:\n- name: default\n  context: {cluster: c, user: u}\ncurrent-context: default\n"
    "users:\n- name: u\n  user: {token: abc}\n"
)


def valid() -> dict[str, Any]:
    """A complete, valid config in the form Pulumi passes it (strings; JSON for lists)."""
    return {
        "registryName": "contosoedge",
        "registryResourceGroup": "rg-edge",
        "connectedRegistryName": "ship01",
        "repositories": json.dumps(["hello-world", "fleet/*"]),
        "kubeconfig": KUBECONFIG,
        "nodes": json.dumps([{"host": "192.0.2.10", "role": "server", "hostKey": HOST_KEY},
                             {"host": "node-b.local", "role": "agent", "hostKey": HOST_KEY}]),
        "sshPrivateKey": SSH_KEY,
        "pullSecretNamespaces": json.dumps(["apps"]),
        "serviceClusterIP": "10.43.200.200",
    }


def pinned(nodes: Any) -> Any:
    """``nodes`` with :data:`HOST_KEY` on each node mapping written without ``hostKey`` or ``gone``."""
    if not isinstance(nodes, list):
        return nodes
    return [{**n, "hostKey": HOST_KEY} if isinstance(n, dict) and not {"hostKey", "gone"} & n.keys() else n
            for n in nodes]


def with_(**changes: Any) -> dict[str, Any]:
    values = valid()
    for key, value in changes.items():
        if key == "nodes":
            value = pinned(value)
        if value is None:
            values.pop(key, None)
        elif isinstance(value, (list, dict)):
            values[key] = json.dumps(value)
        else:
            values[key] = value
    return values


def problems_for(values: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_site_config(values)
    return caught.value.problems


def test_valid_config_loads_with_defaults() -> None:
    site = load_site_config(valid())
    assert site.mode == "ReadOnly"
    assert site.sync_schedule == "30 * * * *"
    assert site.sync_window == "PT1H"
    assert site.http_enabled is False and site.port == 443 and site.scheme == "https"
    assert site.mirror_login_server is True
    assert (site.certificate_validity_days, site.certificate_renew_before_days) == (365, 30)
    assert site.nodes[0].service_unit == "k3s"
    assert site.nodes[1].service_unit == "k3s-agent"
    assert site.effective_client_repositories == ("hello-world", "fleet/*")


def test_pulumi_string_values_are_coerced() -> None:
    site = load_site_config(with_(httpEnabled="true", chunkSizeInMb="4", auditLog="true"))
    assert site.http_enabled is True and site.port == 80
    assert site.chunk_size_in_mb == 4
    assert site.audit_log is True


def test_empty_secret_defaults_mean_unset() -> None:
    """"" is unset for a secret (stacks written when Pulumi.yaml declared them with that default)."""
    problems = problems_for(with_(kubeconfig="", sshPrivateKey=""))
    assert "edge-registry:kubeconfig: required: set kubeconfig (secret) or kubeconfigPath" in problems
    assert any(p.startswith("edge-registry:sshPrivateKey: required") for p in problems)


@pytest.mark.parametrize("key", ["kubeContext", "kubeconfigPath", "serviceClusterIP", "serviceName", "previewNodeUser"])
def test_an_empty_optional_name_is_refused_not_ignored(key: str) -> None:
    changes: dict[str, Any] = {key: ""}
    if key == "kubeconfigPath":
        changes["kubeconfig"] = None
    problems = problems_for(with_(**changes))
    assert problems == [f"edge-registry:{key}: '' is invalid: is empty: remove the key to leave it unset"]


def test_empty_optional_node_fields_are_refused() -> None:
    problems = problems_for(with_(nodes=[{"host": "10.0.0.1", "role": "server", "unit": "", "hostKey": " "}]))
    assert {p.split(":")[1] for p in problems} == {"nodes[0].unit", "nodes[0].hostKey"}


@pytest.mark.parametrize("value", ["yes", "no", "on", "1", "0", "TRUE", "", "y"])
def test_booleans_are_only_true_or_false(value: str) -> None:
    problems = problems_for(with_(httpEnabled=value))
    assert problems == [f"edge-registry:httpEnabled: {value!r} is invalid: {BOOL_EXPECTED}"]


def test_booleans_accept_what_pulumi_config_get_bool_accepts() -> None:
    for text, expected in (("true", True), ("True", True), ("false", False), ("False", False)):
        assert load_site_config(with_(auditLog=text)).audit_log is expected
    site = load_site_config(with_(nodes=[{"host": "10.0.0.1", "role": "server", "gone": False, "hostKey": HOST_KEY}]))
    assert site.nodes[0].gone is False
    (problem,) = problems_for(with_(nodes=[{"host": "10.0.0.1", "role": "server", "gone": "yes"}]))
    assert problem.startswith("edge-registry:nodes[0].gone: 'yes' is invalid: expected true or false")


def test_numbers_are_whole_numbers_not_booleans() -> None:
    assert problems_for(with_(chunkSizeInMb="1.5")) == ["edge-registry:chunkSizeInMb: '1.5' is invalid: expected a whole number"]
    (problem,) = problems_for(with_(nodes=[{"host": "10.0.0.1", "role": "server", "port": True}]))
    assert problem.startswith("edge-registry:nodes[0].port: True is invalid: expected a whole number")


@pytest.mark.parametrize("host", ["999.1.1.1", "10.0.0", "10.0.0.1.5", "256.256.256.256", "1..2.3"])
def test_a_host_that_looks_like_ipv4_must_be_one(host: str) -> None:
    (problem,) = problems_for(with_(nodes=[{"host": host, "role": "server"}]))
    assert problem.startswith("edge-registry:nodes[0].host:") and "looks like an IPv4 address" in problem


def test_real_addresses_and_names_are_hosts() -> None:
    nodes = [{"host": h, "role": "agent"} for h in ("10.0.0.1", "fd00::5", "node-1.site.example", "n1")]
    assert [n.host for n in load_site_config(with_(nodes=nodes)).nodes] == ["10.0.0.1", "fd00::5", "node-1.site.example", "n1"]


@pytest.mark.parametrize(
    ("schedule", "field"),
    [("61 * * * *", "minute"), ("* 24 * * *", "hour"), ("* * 32 * *", "day-of-month"), ("* * 0 * *", "day-of-month"),
     ("* * * 13 *", "month"), ("* * * * 8", "day-of-week"), ("*/x * * * *", "minute")],
)
def test_a_cron_message_names_the_field_out_of_range(schedule: str, field: str) -> None:
    (problem,) = problems_for(with_(syncSchedule=schedule))
    assert problem.startswith("edge-registry:syncSchedule:")
    assert f"the {field} field" in problem and "5-field" not in problem


def test_a_cron_with_the_wrong_number_of_fields_says_how_many() -> None:
    (problem,) = problems_for(with_(syncSchedule="0 30 * * * *"))
    assert "expected 5 cron fields" in problem and "found 6" in problem


def test_unknown_keys_get_a_did_you_mean() -> None:
    problems = problems_for(with_(httpEnable="true", repositorys=json.dumps(["a"]), HTTPENABLED="true"))
    assert "edge-registry:httpEnable: unknown setting; did you mean `edge-registry:httpEnabled`?" in problems
    assert "edge-registry:repositorys: unknown setting; did you mean `edge-registry:repositories`?" in problems
    assert "edge-registry:HTTPENABLED: unknown setting; did you mean `edge-registry:httpEnabled`?" in problems
    (far,) = problems_for(with_(zzzqqq="1"))
    assert far == "edge-registry:zzzqqq: unknown setting; see the configuration reference in docs/configuration.md"


def test_an_unknown_node_field_gets_a_did_you_mean() -> None:
    (problem,) = problems_for(with_(nodes=[{"host": "10.0.0.1", "role": "server", "hostkey": "x"}]))
    assert problem == "edge-registry:nodes[0].hostkey: unknown setting; did you mean `hostKey`?"


def test_misspelt_azure_native_keys_get_a_did_you_mean() -> None:
    with pytest.raises(ConfigError) as caught:
        load_site_config(valid(), other_keys=["azure-native:locaton", "azure-native:subscriptionId", "kubernetes:context"])
    assert caught.value.problems == [
        "azure-native:locaton: not a setting of the azure-native provider; did you mean `azure-native:location`?"
    ]


def test_a_misspelt_namespace_gets_a_did_you_mean() -> None:
    """Nothing reads `edge-registy:` or `azure-nativ:`: without this the value is dropped silently."""
    with pytest.raises(ConfigError) as caught:
        load_site_config(valid(), other_keys=[
            "edge-registy:passwordExpiryDays", "azure-nativ:location", "Azure-Native:location",
            "azure_native:locaton", "edge-registy:zzzqqq",
        ])
    assert caught.value.problems == [
        "edge-registy:passwordExpiryDays: unknown namespace `edge-registy`, so no one reads this key; "
        "did you mean `edge-registry:passwordExpiryDays`?",
        "azure-nativ:location: unknown namespace `azure-nativ`, so no one reads this key; "
        "did you mean `azure-native:location`?",
        "Azure-Native:location: unknown namespace `Azure-Native`, so no one reads this key; "
        "did you mean `azure-native:location`?",
        "azure_native:locaton: unknown namespace `azure_native`, so no one reads this key; "
        "did you mean `azure-native:location`?",
        "edge-registy:zzzqqq: unknown namespace `edge-registy`, so no one reads this key; "
        "did you mean the namespace `edge-registry`?",
    ]


def test_other_providers_namespaces_are_accepted() -> None:
    others = ["kubernetes:context", "command:x", "pulumi:tags", "azure:location", "azuread:tenantId",
              "random:seed", "tls:x", "azure-native:location"]
    assert load_site_config(valid(), other_keys=others).registry_name == "contosoedge"


def test_unprefixed_keys_are_refused_with_the_key_to_write() -> None:
    from components.config.keys import key_problems

    assert key_problems(["auditLog", "loctaion"]) == [
        "auditLog: a stack config key needs its namespace (Pulumi refuses `auditLog`): write `edge-registry:auditLog`",
        "loctaion: a stack config key needs its namespace (Pulumi refuses `loctaion`): write it with its namespace; "
        "see the configuration reference in docs/configuration.md",
    ]


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [("https://999.1.1.1", "the host '999.1.1.1' looks like an IPv4 address but is not one"),
     ("https://10.0.0", "the host '10.0.0' looks like an IPv4 address"),
     ("https://management.azure.com:99999", "the port 99999 is out of range: expected 1-65535"),
     ("https://management.azure.com:0", "the port 0 is out of range"),
     ("https://bad_host.example", "the host 'bad_host.example' is not an IP address or a DNS host name"),
     ("http://management.azure.com", "expected an https URL"),
     ("management.azure.com", "expected an https URL"),
     ("https://management.azure.com/subscriptions", "expected an https URL")],
)
def test_the_arm_endpoint_is_an_https_url_with_a_valid_host_and_port(endpoint: str, says: str) -> None:
    (problem,) = problems_for(with_(armEndpoint=endpoint))
    assert problem.startswith(f"edge-registry:armEndpoint: {endpoint!r} is invalid:") and says in problem, problem


def test_real_arm_endpoints_are_accepted() -> None:
    for endpoint, kept in (("https://management.usgovcloudapi.net/", "https://management.usgovcloudapi.net"),
                           ("https://management.chinacloudapi.cn", "https://management.chinacloudapi.cn"),
                           ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
                           ("https://arm.local:65535", "https://arm.local:65535")):
        assert load_site_config(with_(armEndpoint=endpoint)).arm_endpoint == kept


def test_the_default_chart_takes_the_pinned_cluster_ip() -> None:
    assert load_site_config(valid()).chart_version == "0.3.0"
    for version in ("0.3.0", "v0.3.0", "0.3.1", "0.4.0", "0.10.0", "1.0.0", "0.3.0+build.5"):
        assert load_site_config(with_(chartVersion=version)).chart_version == version


@pytest.mark.parametrize("version", ["0.2.0", "0.1.0", "v0.2.9", "0.3.0-rc.1"])
def test_a_chart_before_0_3_0_with_a_pinned_cluster_ip_is_refused(version: str) -> None:
    """Before 0.3.0 the chart has no service.clusterIP: the pinned IP would be ignored silently
    and the nodes' registries.yaml and the certificate would name an address nothing serves."""
    (problem,) = problems_for(with_(chartVersion=version))
    assert problem.startswith(f"edge-registry:chartVersion: {version} ignores service.clusterIP")
    assert "set edge-registry:chartVersion to 0.3.0 or later" in problem
    # Without a pinned IP (http, the Service looked up by name) the older chart is fine.
    site = load_site_config(with_(chartVersion=version, serviceClusterIP=None, httpEnabled="true"))
    assert site.chart_version == version


def test_an_invalid_chart_version_is_one_problem() -> None:
    assert problems_for(with_(chartVersion="0.2")) == [
        "edge-registry:chartVersion: '0.2' is invalid: expected a semantic version such as 0.3.0"
    ]


def test_a_negative_expiry_is_one_problem_not_two() -> None:
    assert problems_for(with_(passwordExpiryDays="-5")) == [
        "edge-registry:passwordExpiryDays: -5 is invalid: expected a whole number from 1 to 3650"
    ]
    # The cross rule still holds when both values are valid on their own.
    (problem,) = problems_for(with_(passwordExpiryDays="20", passwordRotateBeforeDays="25"))
    assert problem.startswith("edge-registry:passwordRotateBeforeDays: 25 must be less than")


VALID_NOTIFICATIONS = [
    "*:*", "*:*:*", "*@*:*", "hello-world:1.0:delete", "path/to/repo/*:push", "hello-world:*:*",
    "repo@sha256:" + "a" * 64 + ":push", "repo:v1@sha256:" + "b" * 64 + ":delete", "fleet/app:*:push", "hello-world:push",
]


def test_the_documented_notification_patterns_are_accepted() -> None:
    site = load_site_config(with_(notifications=VALID_NOTIFICATIONS))
    assert site.notifications == tuple(VALID_NOTIFICATIONS)


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("hello-world:1.0:pull", "the action 'pull' is not push, delete or *"),
        ("hello-world:*:Push", "the action 'Push' is not push, delete or *"),
        ("hello-world", "expected `artifact:action`"),
        (":push", "expected `artifact:action`"),
        ("Hello:push", "the artifact 'Hello' is not name[:tag][@digest]"),
        ("repo@md5:push", "the artifact 'repo@md5' is not"),
        ("a/*/b:push", "the artifact 'a/*/b' is not"),
        ("repo:1.0:2.0:push", "the artifact 'repo:1.0:2.0' is not"),
    ],
)
def test_a_bad_notification_says_which_part_is_wrong(pattern: str, says: str) -> None:
    (problem,) = problems_for(with_(notifications=[pattern]))
    assert problem.startswith("edge-registry:notifications:") and says in problem, problem


def test_connected_registry_names_are_lower_case() -> None:
    (problem,) = problems_for(with_(connectedRegistryName="Ship01"))
    assert problem.startswith("edge-registry:connectedRegistryName: 'Ship01' is invalid: must be lower case ('ship01')")


def test_empty_tls_secrets_mean_unset() -> None:
    site = load_site_config(with_(tlsCaCertificate="", tlsCaKey="", tlsCertificate="", tlsKey=""))
    assert site.tls_ca_certificate is None and site.tls_key is None


BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("cr name with hyphen", {"connectedRegistryName": "ship-01"}, "connectedRegistryName"),
    ("cr name starts with digit", {"connectedRegistryName": "1ship"}, "connectedRegistryName"),
    ("cr name too short", {"connectedRegistryName": "shp"}, "connectedRegistryName"),
    ("cr name too long", {"connectedRegistryName": "s" * (MAX_CONNECTED_REGISTRY_NAME + 1)}, "connectedRegistryName"),
    ("cr name missing", {"connectedRegistryName": None}, "connectedRegistryName"),
    ("bad mode", {"mode": "Mirror"}, "mode"),
    ("read-write without opt-in", {"mode": "ReadWrite"}, "mode"),
    ("cron with 6 fields", {"syncSchedule": "0 30 * * * *"}, "syncSchedule"),
    ("cron nonsense", {"syncSchedule": "every hour"}, "syncSchedule"),
    ("cron out of range", {"syncSchedule": "61 * * * *"}, "syncSchedule"),
    ("sync window too short", {"syncWindow": "PT30M"}, "syncWindow"),
    ("sync window too long", {"syncWindow": "P8D"}, "syncWindow"),
    ("sync window not ISO", {"syncWindow": "1h"}, "syncWindow"),
    ("message ttl too short", {"messageTtl": "PT12H"}, "messageTtl"),
    ("message ttl too long", {"messageTtl": "P91D"}, "messageTtl"),
    ("message ttl in months", {"messageTtl": "P1M"}, "messageTtl"),
    ("log level", {"logLevel": "Verbose"}, "logLevel"),
    ("audit log not a bool", {"auditLog": "maybe"}, "auditLog"),
    ("notification syntax", {"notifications": ["hello-world"]}, "notifications"),
    ("notification action", {"notifications": ["hello-world:1.0:pull"]}, "notifications"),
    ("cr name upper case", {"connectedRegistryName": "ShipOne"}, "connectedRegistryName"),
    ("http not a bool", {"httpEnabled": "yes"}, "httpEnabled"),
    ("empty kube context", {"kubeContext": ""}, "kubeContext"),
    ("ipv4-like host", {"nodes": [{"host": "999.1.1.1", "role": "server"}]}, "nodes[0].host"),
    ("repository upper case", {"repositories": ["Hello-World"]}, "repositories"),
    ("repository bad pattern", {"repositories": ["fleet/*/x"]}, "repositories"),
    ("repository bare wildcard", {"repositories": ["*"]}, "repositories"),
    ("repositories empty", {"repositories": []}, "repositories"),
    ("repositories not a list", {"repositories": "hello-world"}, "repositories"),
    ("repositories duplicate", {"repositories": ["a", "a"]}, "repositories"),
    ("too many repositories", {"repositories": [f"r{i}" for i in range(501)]}, "repositories"),
    ("client repository invalid", {"clientRepositories": ["UP"]}, "clientRepositories"),
    ("registry name with hyphen", {"registryName": "my-registry"}, "registryName"),
    ("resource group missing", {"registryResourceGroup": None}, "registryResourceGroup"),
    ("resource group ends with dot", {"registryResourceGroup": "rg."}, "registryResourceGroup"),
    ("expiry below rotation", {"passwordExpiryDays": "10", "passwordRotateBeforeDays": "10"}, "passwordRotateBeforeDays"),
    ("expiry zero", {"passwordExpiryDays": "0"}, "passwordExpiryDays"),
    ("arm endpoint http", {"armEndpoint": "http://management.azure.com"}, "armEndpoint"),
    ("arm endpoint ipv4-like host", {"armEndpoint": "https://999.1.1.1"}, "armEndpoint"),
    ("arm endpoint port", {"armEndpoint": "https://management.azure.com:99999"}, "armEndpoint"),
    ("chart without service.clusterIP", {"chartVersion": "0.2.0"}, "chartVersion"),
    ("kubeconfig not yaml", {"kubeconfig": "a: [b"}, "kubeconfig"),
    ("kubeconfig without clusters", {"kubeconfig": "apiVersion: v1\nkind: Config\n"}, "kubeconfig"),
    ("no kubeconfig at all", {"kubeconfig": None}, "kubeconfig"),
    ("both kubeconfig and path", {"kubeconfigPath": "/etc/k.yaml"}, "kubeconfig"),
    ("namespace upper case", {"namespace": "Connected"}, "namespace"),
    ("release name too long", {"releaseName": "r" * 54}, "releaseName"),
    ("chart version", {"chartVersion": "latest"}, "chartVersion"),
    ("helm timeout too small", {"helmTimeoutSeconds": "5"}, "helmTimeoutSeconds"),
    ("chunk size zero", {"chunkSizeInMb": "0"}, "chunkSizeInMb"),
    ("storage request", {"storageRequest": "20 gigs"}, "storageRequest"),
    ("storage class", {"storageClassName": "Local_Path"}, "storageClassName"),
    ("cluster ip", {"serviceClusterIP": "10.43.0.300"}, "serviceClusterIP"),
    ("chart values override managed", {"chartValues": {"connectionString": "x"}}, "chartValues"),
    ("chart values nested managed", {"chartValues": {"pvc": {"storageRequest": "1Gi"}}}, "chartValues"),
    ("chart values not an object", {"chartValues": "{not json"}, "chartValues"),
    ("pull secret namespace", {"pullSecretNamespaces": ["Apps"]}, "pullSecretNamespaces"),
    ("pull secret name", {"pullSecretName": "Pull_Secret"}, "pullSecretName"),
    ("node host", {"nodes": [{"host": "bad host", "role": "server"}]}, "nodes[0].host"),
    ("node port", {"nodes": [{"host": "10.0.0.1", "role": "server", "port": 70000}]}, "nodes[0].port"),
    ("node role", {"nodes": [{"host": "10.0.0.1", "role": "master"}]}, "nodes[0].role"),
    ("node role missing", {"nodes": [{"host": "10.0.0.1"}]}, "nodes[0].role"),
    ("node unit", {"nodes": [{"host": "10.0.0.1", "role": "server", "unit": "docker"}]}, "nodes[0].unit"),
    ("node path relative", {"nodes": [{"host": "10.0.0.1", "role": "server", "path": "registries.yaml"}]}, "nodes[0].path"),
    ("node host key", {"nodes": [{"host": "10.0.0.1", "role": "server", "hostKey": "AAAA"}]}, "nodes[0].hostKey"),
    ("node unknown field", {"nodes": [{"host": "10.0.0.1", "role": "server", "hostname": "x"}]}, "nodes[0].hostname"),
    ("duplicate node hosts", {"nodes": [{"host": "10.0.0.1", "role": "server"}, {"host": "10.0.0.1", "role": "agent"}]}, "nodes"),
    ("ssh key missing", {"sshPrivateKey": None}, "sshPrivateKey"),
    ("ssh key not a key", {"sshPrivateKey": "hunter2"}, "sshPrivateKey"),
    ("node restart timeout", {"nodeRestartTimeoutSeconds": "1"}, "nodeRestartTimeoutSeconds"),
    ("retired mirror ca file", {"mirrorCaFile": "/etc/ssl/ca.pem"}, "mirrorCaFile"),
    ("https without cluster ip", {"serviceClusterIP": None}, "serviceClusterIP"),
    ("skip verify on http", {"httpEnabled": "true", "mirrorInsecureSkipVerify": "true"}, "mirrorInsecureSkipVerify"),
    ("certificate renewal not before expiry", {"certificateValidityDays": "30"}, "certificateRenewBeforeDays"),
    ("certificate validity zero", {"certificateValidityDays": "0"}, "certificateValidityDays"),
    ("ca certificate not pem", {"tlsCaCertificate": "not a certificate"}, "tlsCaCertificate"),
    ("ca key not pem", {"tlsCaKey": "hunter2"}, "tlsCaKey"),
    ("login server mirror not a bool", {"mirrorLoginServer": "maybe"}, "mirrorLoginServer"),
    ("unknown key", {"repositorys": json.dumps(["a"])}, "repositorys"),
]


@pytest.mark.parametrize(("case", "changes", "key"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_names_the_key(case: str, changes: dict[str, Any], key: str) -> None:
    problems = problems_for(with_(**changes))
    assert any(p.startswith(f"edge-registry:{key}:") for p in problems), problems


def test_there_are_at_least_30_distinct_bad_configs() -> None:
    assert len({c[0] for c in BAD_CONFIGS}) >= 30


def test_all_problems_are_reported_at_once() -> None:
    problems = problems_for(with_(connectedRegistryName="a-b", syncWindow="P9D", logLevel="Loud", registryName="x"))
    keys = {p.split(":")[1] for p in problems}
    assert {"connectedRegistryName", "syncWindow", "logLevel", "registryName"} <= keys
    assert all("\n" not in p for p in problems)


def test_problem_shows_bad_value_and_expectation() -> None:
    (problem,) = problems_for(with_(syncWindow="P9D"))
    assert "'P9D'" in problem and "between PT1H and P7D" in problem


def test_secret_values_are_never_echoed() -> None:
    leaked = "super-secret-kubeconfig-text: ["
    problems = problems_for(with_(kubeconfig=leaked, sshPrivateKey="hunter2-password"))
    text = "\n".join(problems)
    assert "hunter2" not in text and "super-secret" not in text
    assert "edge-registry:kubeconfig" in text and "edge-registry:sshPrivateKey" in text


def test_read_write_with_opt_in_is_accepted() -> None:
    site = load_site_config(with_(mode="ReadWrite", allowReadWrite="true"))
    assert site.mode == "ReadWrite"


def test_gone_nodes_need_no_ssh_key() -> None:
    site = load_site_config(with_(sshPrivateKey=None, nodes=[{"host": "10.0.0.9", "role": "agent", "gone": True}]))
    assert site.nodes[0].gone


def test_derived_names_fit_arm_limits() -> None:
    site = load_site_config(with_(connectedRegistryName="s" * MAX_CONNECTED_REGISTRY_NAME))
    for name in (site.sync_token_name, site.sync_scope_map_name, site.client_token_name, site.client_scope_map_name):
        assert len(name) <= 50


def test_config_fields_are_documented() -> None:
    for name, field in SiteConfig.model_fields.items():
        assert field.description, f"{name} has no description"


def test_cross_key_problems_are_reported_with_field_problems() -> None:
    problems = problems_for(with_(connectedRegistryName="a-b", mode="ReadWrite", kubeconfigPath="/k.yaml"))
    keys = [p.split(":")[1] for p in problems]
    assert "connectedRegistryName" in keys
    assert "mode" in keys and "kubeconfig" in keys
    assert len(keys) == len(set(keys))


def test_the_retired_mirror_ca_file_says_what_replaced_it() -> None:
    assert problems_for(with_(mirrorCaFile="/etc/ssl/ca.pem")) == [
        "edge-registry:mirrorCaFile: no longer used: the program installs the site CA next to registries.yaml on "
        "every node (docs/nodes.md); to keep a CA of your own, set it as tlsCaCertificate (and tlsCaKey, or "
        "tlsCertificate and tlsKey) and remove mirrorCaFile"
    ]


def test_an_ssh_rsa_host_key_is_refused_with_the_way_to_pin_another() -> None:
    rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 root@node1"
    problems = problems_for(with_(nodes=[{"host": "10.0.0.1", "role": "server", "hostKey": rsa}]))

    assert len(problems) == 1 and problems[0].startswith("edge-registry:nodes[0].hostKey: ")
    assert "ed25519 or ECDSA" in problems[0] and "ssh-keyscan -t ed25519" in problems[0]


def test_ed25519_and_ecdsa_host_keys_are_accepted() -> None:
    for key in ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG4", "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY"):
        site = load_site_config(with_(nodes=[{"host": "10.0.0.1", "role": "server", "hostKey": key}]))
        assert site.nodes[0].host_key == key


# --- strict input: whole values, types checked before use ----------------------------------

NODE = {"host": "10.0.0.1", "role": "server"}

#: (key as a problem names it, the config change with a good value) for every value checked
#: against a pattern or parsed: each must refuse the same value with a trailing newline.
WHOLE_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("registryName", {"registryName": "contosoedge"}),
    ("registryResourceGroup", {"registryResourceGroup": "rg-edge"}),
    ("connectedRegistryName", {"connectedRegistryName": "ship01"}),
    ("repositories", {"repositories": ["hello-world"]}),
    ("repositories", {"repositories": ["fleet/*"]}),
    ("clientRepositories", {"clientRepositories": ["hello-world"]}),
    ("notifications", {"notifications": ["hello-world:1.0:push"]}),
    ("syncSchedule", {"syncSchedule": "30 * * * *"}),
    ("syncWindow", {"syncWindow": "PT2H"}),
    ("messageTtl", {"messageTtl": "P2D"}),
    ("armEndpoint", {"armEndpoint": "https://management.azure.com"}),
    ("namespace", {"namespace": "connected-registry"}),
    ("releaseName", {"releaseName": "connected-registry"}),
    ("chartVersion", {"chartVersion": "0.3.0"}),
    ("storageClassName", {"storageClassName": "local-path"}),
    ("storageRequest", {"storageRequest": "20Gi"}),
    ("serviceClusterIP", {"serviceClusterIP": "10.43.200.200"}),
    ("serviceName", {"serviceName": "registry"}),
    ("kubeconfigPath", {"kubeconfig": None, "kubeconfigPath": "/etc/edge/site.kubeconfig"}),
    ("kubeContext", {"kubeContext": "default"}),
    ("chartValues", {"chartValues": {"replicaCount": 1}}),  # a key of the values
    ("pullSecretName", {"pullSecretName": "edge-registry-pull"}),
    ("pullSecretNamespaces", {"pullSecretNamespaces": ["apps"]}),
    ("previewNodeUser", {"previewNodeUser": "edge-registry-read"}),
    ("nodes[0].host", {"nodes": [{**NODE, "host": "node1"}]}),
    ("nodes[0].host", {"nodes": [{**NODE, "host": "192.0.2.10"}]}),
    ("nodes[0].host", {"nodes": [{**NODE, "host": "fe80::1%eth0"}]}),
    ("nodes[0].user", {"nodes": [{"user": "admin", **NODE}]}),
    ("nodes[0].unit", {"nodes": [{"unit": "k3s", **NODE}]}),
    ("nodes[0].path", {"nodes": [{"path": "/etc/rancher/rke2/registries.yaml", **NODE}]}),
]


def _with_newline(changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` with a newline after the value checked: the first text in it, depth first (a
    node's field under test comes first)."""
    def add(value: Any) -> tuple[Any, bool]:
        if isinstance(value, str):
            return value + "\n", True
        if isinstance(value, list) and value:
            first, done = add(value[0])
            return [first, *value[1:]], done
        if isinstance(value, dict):
            for key, item in value.items():
                changed, done = add(item)
                if done:
                    return {**value, key: changed}, True
            # an object of objects: the newline goes on its first key
            first = next(iter(value))
            return {f"{first}\n": value[first], **{k: v for k, v in value.items() if k != first}}, True
        return value, False

    key = next(k for k, v in changes.items() if v is not None and k != "kubeconfig")
    return {**changes, key: add(changes[key])[0]}


@pytest.mark.parametrize(("key", "changes"), WHOLE_VALUES, ids=[f"{k}={json.dumps(c)}" for k, c in WHOLE_VALUES])
def test_a_trailing_newline_is_refused_naming_the_key(key: str, changes: dict[str, Any]) -> None:
    load_site_config(with_(**changes))  # the value itself is fine
    problems = problems_for(with_(**_with_newline(changes)))
    assert any(p.startswith(f"edge-registry:{key}: ") for p in problems), problems
    assert all("\n" not in p for p in problems)


@pytest.mark.parametrize("pattern", ["hello-world\n:push", "hello-world:1.0\n:push", "*\n:*", "hello-world:push\n"])
def test_a_newline_inside_a_notification_pattern_is_refused(pattern: str) -> None:
    (problem,) = problems_for(with_(notifications=[pattern]))
    assert problem.startswith("edge-registry:notifications: ")


def test_every_config_pattern_is_matched_whole() -> None:
    """No `re.match` on a pattern ending in `$` (which matches before a trailing newline) in the
    config code: patterns are matched with fullmatch."""
    import pathlib
    import re as regex

    for path in sorted(pathlib.Path(__file__).resolve().parent.parent.joinpath("components", "config").glob("*.py")):
        source = path.read_text()
        assert not regex.search(r"\.match\(", source), f"{path.name}: use fullmatch"
        assert not regex.search(r'\$"\s*\)', source), f"{path.name}: a pattern ends in $"


def test_a_pasted_host_key_keeps_working_without_its_newline() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG4 root@n1"
    site = load_site_config(with_(nodes=[{**NODE, "hostKey": key + "\n"}]))
    assert site.nodes[0].host_key == key


WRONG_TYPES: list[tuple[str, Any, str]] = [
    ("nodes", "5", "expected a list"),
    ("nodes", 5, "expected a list"),
    ("nodes", "true", "expected a list"),
    ("nodes", json.dumps({"host": "10.0.0.1"}), "expected a list"),
    ("nodes[0]", json.dumps(["x"]), "expected an object"),
    ("nodes[0]", json.dumps([5]), "expected an object"),
    ("nodes[0].host", json.dumps([{"host": ["a"], "role": "server"}]), "expected text"),
    ("nodes[0].host", json.dumps([{"host": 5, "role": "server"}, {"host": 5, "role": "agent"}]), "expected text"),
    ("nodes[0].port", json.dumps([{**NODE, "port": [22]}]), "expected a whole number"),
    ("nodes[0].port", json.dumps([{**NODE, "port": 22.5}]), "expected a whole number"),
    ("nodes[0].port", json.dumps([{**NODE, "port": 10**30}]), "at most 18 digits"),
    ("nodes[0].gone", json.dumps([{**NODE, "gone": "yes"}]), "expected true or false"),
    ("nodes", "[" * 40 + "]" * 40, "nested more than 32 levels deep"),
    ("repositories", '"hello-world"', "expected a list"),
    ("repositories", "5", "expected a list"),
    ("repositories", "hello-world", "expected a list"),
    ("repositories[0]", "[5]", "expected text"),
    ("repositories[0]", '[["a"]]', "expected text"),
    ("chartValues", "3", "expected an object"),
    ("chartValues", "[1]", "expected an object"),
    ("chartValues", '"x"', "expected an object"),
    ("notifications", "{}", "expected a list"),
    ("pullSecretNamespaces", '"apps"', "expected a list"),
    ("passwordExpiryDays", '["1"]', "expected a whole number"),
    ("passwordExpiryDays", "1.5", "expected a whole number"),
    ("passwordExpiryDays", "inf", "expected a whole number"),
    ("passwordExpiryDays", float("inf"), "expected a whole number"),
    ("passwordExpiryDays", "9" * 5000, "at most 18 digits"),
    ("passwordRotateBeforeDays", "true", "expected a whole number"),
    ("certificateValidityDays", "x", "expected a whole number"),
    ("certificateRenewBeforeDays", [1], "expected a whole number"),
    ("helmTimeoutSeconds", {"a": 1}, "expected a whole number"),
    ("chunkSizeInMb", None, "expected a whole number"),
    ("auditLog", "[true]", "expected true or false"),
    ("cloudOnly", 1, "expected true or false"),
    ("mode", ["ReadOnly"], "expected 'ReadOnly' or 'ReadWrite'"),
    ("registryName", 12345, "expected text"),
    ("syncSchedule", ["30 * * * *"], "expected text"),
    ("kubeconfigPath", ["/etc/k"], "expected text"),
]


@pytest.mark.parametrize(("key", "value", "says"), WRONG_TYPES, ids=[f"{k}={v!r:.40}" for k, v, _ in WRONG_TYPES])
def test_a_value_of_the_wrong_type_is_a_config_error_naming_the_key(key: str, value: Any, says: str) -> None:
    top = key.split("[")[0]
    values = valid()
    values[top] = value
    if top == "kubeconfigPath":
        del values["kubeconfig"]
    problems = problems_for(values)  # a ConfigError, never a TypeError or an AttributeError
    mine = [p for p in problems if p.startswith(f"edge-registry:{key}: ")]
    assert mine and says in mine[0], problems


@pytest.mark.parametrize("path", ["/etc//rancher/k3s/registries.yaml", "/etc/./rancher/registries.yaml",
                                  "/etc/rancher/../k3s/registries.yaml"])
def test_a_node_path_that_is_not_canonical_is_refused_naming_the_key(path: str) -> None:
    problems = problems_for(with_(nodes=[{"host": "10.0.0.1", "role": "server", "path": path}]))
    assert any(p.startswith("edge-registry:nodes[0].path:") for p in problems), problems
