"""REST windows (incremental, backfill planning) and source configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from loaders.exceptions import ConfigError
from loaders.fhir.elements import unknown_elements
from loaders.rest.config import AuthKind, Strategy, load_rest_source_config
from loaders.rest.windows import Window, incremental_window, plan_windows

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_incremental_window_starts_overlap_before_the_cursor() -> None:
    window = incremental_window(T0, timedelta(hours=24), T0 + timedelta(days=2))
    assert window.params("_lastUpdated") == {
        "_lastUpdated": ["gt2023-12-31T00:00:00.000Z", "le2024-01-03T00:00:00.000Z"]
    }
    assert incremental_window(None, timedelta(hours=24), T0).start is None


def test_open_ended_windows_send_no_upper_bound() -> None:
    assert Window(T0, T0 + timedelta(days=1), open_end=True).params("date") == {
        "date": ["gt2024-01-01T00:00:00.000Z"]
    }


def test_plan_windows_splits_until_each_window_fits_and_drops_empty_ones() -> None:
    # 1,000 resources spread evenly over 100 days, none in the last 20.
    def count(window: Window) -> int:
        assert window.start is not None
        start = max(window.start, T0)
        end = min(window.end, T0 + timedelta(days=80))
        return max(0, int((end - start) / timedelta(days=80) * 1000))

    windows = plan_windows(
        T0,
        T0 + timedelta(days=100),
        count,
        max_resources=300,
        min_span=timedelta(hours=1),
        fallback_span=timedelta(days=30),
    )

    assert all(count(w) <= 300 for w in windows)
    assert windows == sorted(windows, key=lambda w: w.end)
    assert all(a.end == b.start for a, b in pairwise(windows))
    assert windows[-1].end <= T0 + timedelta(days=100)
    assert sum(count(w) for w in windows) == pytest.approx(1000, abs=len(windows))


def test_plan_windows_falls_back_to_fixed_spans_without_counts() -> None:
    windows = plan_windows(
        T0,
        T0 + timedelta(days=70),
        lambda window: None,
        max_resources=10,
        min_span=timedelta(hours=1),
        fallback_span=timedelta(days=30),
    )
    assert [w.end - w.start for w in windows] == [timedelta(days=30)] * 2 + [timedelta(days=10)]


def test_unknown_elements_flags_renamed_fields_not_choice_types_or_extensions() -> None:
    keys = ["resourceType", "id", "birth_date", "_birthDate", "deceasedBoolean", "extension"]
    assert unknown_elements("Patient", keys) == ["birth_date"]


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = "SOURCES__FHIR_REST__ENV_EHR__"
    monkeypatch.setenv(prefix + "BASE_URL", "https://ehr.example.org/fhir/")
    monkeypatch.setenv(prefix + "AUTH", "client_credentials")
    monkeypatch.setenv(prefix + "CLIENT_ID", "fhir-elt")
    monkeypatch.setenv(prefix + "TOKEN_URL", "https://ehr.example.org/token")
    monkeypatch.setenv(prefix + "CREDENTIALS__CLIENT_SECRET", "not-shown")
    monkeypatch.setenv(prefix + "RATE_LIMIT", "100")
    monkeypatch.setenv(prefix + "TYPES", '{"Observation": {"strategy": "clinical_date"}}')

    config = load_rest_source_config("env_ehr")

    assert config.base_url == "https://ehr.example.org/fhir"
    assert config.auth.kind is AuthKind.CLIENT_CREDENTIALS
    assert config.rate_limit == 100 and config.headroom == 0.6
    assert config.type_config("Observation").strategy is Strategy.CLINICAL_DATE
    assert config.type_config("Patient").strategy is Strategy.LAST_UPDATED
    assert config.resource_types[0] == "Patient"
    assert "not-shown" not in repr(config)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("HEADROOM", "1.5", "headroom must be at most 1"),
        ("PAGE_SIZE", "zero", "page_size must be a number"),
        ("AUTH", "smart_backend", "credentials.private_key"),
        ("TYPES", '{"Observation": {"strategy": "guess"}}', "strategy must be one of"),
        ("GROUPS", '{"g": {"types": ["Patient", "Paitent"]}}', "'Paitent' is not a FHIR R4"),
    ],
)
def test_config_errors_name_the_key(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, message: str
) -> None:
    monkeypatch.setenv("SOURCES__FHIR_REST__BAD__BASE_URL", "https://ehr.example.org/fhir")
    monkeypatch.setenv("SOURCES__FHIR_REST__BAD__CLIENT_ID", "x")
    monkeypatch.setenv(f"SOURCES__FHIR_REST__BAD__{key}", value)
    with pytest.raises(ConfigError, match=message):
        load_rest_source_config("bad")
