"""What of the Kubernetes layout (docs/operations.md, deploy/k8s/) can be checked without a
cluster: the instance the Helm chart renders loads with dagster-k8s's K8sRunLauncher against a
real Postgres, and the jobs the run pods execute resolve with chunked backfills."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from storygen_dagster.storage.db import dagster_url

REPO = Path(__file__).resolve().parents[1]
KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "users": [{"name": "u", "user": {"token": "t"}}],
    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "x",
}


def test_the_helm_instance_loads_with_the_k8s_run_launcher(tmp_path, database_url, monkeypatch):
    pytest.importorskip("dagster_k8s")
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(KUBECONFIG))
    config = yaml.safe_load((REPO / "deploy/k8s/dagster.yaml").read_text())
    launcher_config = config["run_launcher"]["config"]
    launcher_config.update(
        load_incluster_config=False, kubeconfig_file=str(tmp_path / "kubeconfig")
    )
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster_url(database_url))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "K8sRunLauncher"
        assert launcher.job_namespace == "storygen"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
        assert instance.get_runs() == []  # the Postgres storage answers


def test_the_run_pods_jobs_resolve_with_chunked_backfills(monkeypatch):
    from storygen_dagster.definitions import defs
    from storygen_dagster.defs.story.assets import story_assets
    from storygen_dagster.settings import get_settings

    for name in ("storybook_job", "storybook_celery_job"):
        assert defs.resolve_job_def(name).partitions_def is not None
    policy = story_assets.backfill_policy
    assert policy is not None
    assert policy.max_partitions_per_run == get_settings().stories_per_run
