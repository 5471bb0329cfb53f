"""The platform's rules: release tags and Kubernetes quantities."""

import pytest
from confiance_job.rules import QUANTITY, VERSION, quantity_value, release_version


@pytest.mark.parametrize(
    "tag, version", [("v0.1.0", "0.1.0"), ("v10.20.30", "10.20.30"), ("v1.0.0-rc.1", "1.0.0-rc.1")]
)
def test_a_release_tag_gives_its_version(tag, version):
    assert release_version(tag) == version
    assert VERSION.match(version)


@pytest.mark.parametrize("tag", ["0.1.0", "v1.0", "v01.0.0", "release-1", "v1.0.0+build", "", None])
def test_anything_else_is_refused_with_what_a_release_tag_looks_like(tag):
    with pytest.raises(ValueError, match=r"is not a release tag\. Expected vMAJOR\.MINOR\.PATCH, e\.g\. v0\.2\.0"):
        release_version(tag)


@pytest.mark.parametrize("text", ["1", "500m", "1.5", ".5", "2Gi", "1Pi", ".5Gi", "64M", "100k"])
def test_kubernetes_quantities_are_accepted(text):
    assert QUANTITY.match(text)


@pytest.mark.parametrize("text", ["", "two", "8 GB", "1gi", "1.", "-1", "1GiB", "m"])
def test_anything_else_is_not_a_quantity(text):
    assert not QUANTITY.match(text)


def test_quantities_compare_by_value():
    assert quantity_value("500m") == 0.5
    assert quantity_value("1Gi") == 2**30 > quantity_value("1G") == 1e9
    assert quantity_value(".5Gi") == quantity_value("512Mi")


def test_a_step_s_resources_are_checked_as_the_cluster_would():
    from confiance_job.rules import resource_problems

    assert resource_problems("train", "memory", "8Gi", "16Gi") == []
    assert resource_problems("train", "cpu", 1, "2") == []  # numbers are quantities too
    assert resource_problems("train", "memory", "8 GB", "16Gi") == [
        "step train: memory request '8 GB' is not a Kubernetes quantity, e.g. 16Gi or 512Mi"
    ]
    assert resource_problems("train", "cpu", "4", "2") == [
        "step train: cpu request 4 is above its limit 2; the cluster refuses it"
    ]
