"""Unit: settings are read from the environment and fail fast with the variable's name."""

from __future__ import annotations

import pytest

from embedding_pipeline.errors import ConfigurationError
from embedding_pipeline.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "YC_FOLDER_ID",
        "EMBEDDINGS_MODEL",
        "EMBEDDINGS_QUERY_MODEL",
        "EMBEDDINGS_RPS",
        "SOURCE_PREFIX",
    ):
        monkeypatch.delenv(name, raising=False)


def test_short_model_names_expand_to_yandex_uris(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YC_FOLDER_ID", "b1gfolder")
    settings = load_settings()
    assert settings.document_model_uri == "emb://b1gfolder/text-search-doc/latest"
    assert settings.query_model_uri == "emb://b1gfolder/text-search-query/latest"
    assert settings.embeddings_url == "https://ai.api.cloud.yandex.net/v1"
    assert settings.embeddings_rps == 10


def test_full_model_uri_is_used_as_is_without_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDINGS_MODEL", "emb://b1gother/text-search-doc/rc")
    monkeypatch.setenv("EMBEDDINGS_QUERY_MODEL", "emb://b1gother/text-search-query/rc")
    settings = load_settings()
    assert settings.document_model_uri == "emb://b1gother/text-search-doc/rc"


def test_missing_folder_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="YC_FOLDER_ID"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EMBEDDINGS_RPS", "0"),
        ("EMBEDDINGS_RPS", "fast"),
        ("EMBEDDINGS_CONCURRENCY", "-1"),
        ("CHUNK_MAX_TOKENS", "5000"),
        ("EMBEDDINGS_URL", "ftp://example"),
        ("MAX_SOURCE_BYTES", "0"),
    ],
)
def test_bad_value_fails_with_its_variable_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("YC_FOLDER_ID", "b1gfolder")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        load_settings()


def test_source_prefix_inside_output_prefix_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YC_FOLDER_ID", "b1gfolder")
    monkeypatch.setenv("SOURCE_PREFIX", "embeddings/in/")
    with pytest.raises(ConfigurationError, match="SOURCE_PREFIX"):
        load_settings()


def test_secrets_do_not_appear_in_the_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YC_FOLDER_ID", "b1gfolder")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "YCAJEsecretkeyid")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert "YCAJEsecretkeyid" not in str(raised.value)
    assert "AWS_SECRET_ACCESS_KEY" in str(raised.value)
