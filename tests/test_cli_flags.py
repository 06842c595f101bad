"""Server flags and the environment variables that give their defaults."""

from __future__ import annotations

import argparse

import pytest

from ovserve.cli import build_parser


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["--config_path", "c.json", *argv])


def test_deterministic_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVSERVE_DETERMINISTIC", raising=False)
    assert parse().deterministic is False
    assert parse("--deterministic").deterministic is True
    monkeypatch.setenv("OVSERVE_DETERMINISTIC", "1")
    assert parse().deterministic is True


def test_no_cpu_table_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """--no_cpu_table (or $OVSERVE_NO_CPU_TABLE) turns engine.cpu_properties' table off for
    the server (and for `ovserve check`, which loads models as the server does)."""
    from ovserve import cli

    monkeypatch.delenv("OVSERVE_NO_CPU_TABLE", raising=False)
    parser = cli.build_parser()
    args = parser.parse_args(["--config_path", "c.json", "--rest_port", "8000"])
    assert args.no_cpu_table is False
    assert cli.server_settings(parser, args, []).cpu_table is True
    args = parser.parse_args(["--config_path", "c.json", "--rest_port", "8000",
                              "--no_cpu_table"])
    assert cli.server_settings(parser, args, []).cpu_table is False
    monkeypatch.setenv("OVSERVE_NO_CPU_TABLE", "1")
    assert parse().no_cpu_table is True
    assert cli.build_check_parser().parse_args(["--config_path", "c.json"]).no_cpu_table
    assert "--no_cpu_table" in cli.build_parser().format_help()


def test_body_and_header_timeouts() -> None:
    args = parse("--body_timeout", "5", "--header_timeout", "7")
    assert (args.body_timeout, args.header_timeout) == (5.0, 7.0)
    assert parse().body_timeout == 30.0


def test_an_empty_environment_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVSERVE_PLUGIN_CONFIG", "")
    monkeypatch.setenv("OVSERVE_OVERRIDE_GENERATION_CONFIG", "")
    args = parse()
    assert args.plugin_config == {} and args.override_generation_config == {}


def test_ray_serve_reads_the_environment_as_the_cli_does(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Ray Serve's replicas take $OVSERVE_PLUGIN_CONFIG / $OVSERVE_OVERRIDE_GENERATION_CONFIG
    through the CLI's own parsers: device names upper-cased, the same errors."""
    from ovserve.cli import env_generation_overrides, env_plugin_config

    monkeypatch.setenv("OVSERVE_PLUGIN_CONFIG", '{"cpu": {"INFERENCE_PRECISION_HINT": "f32"}}')
    assert env_plugin_config() == {"CPU": {"INFERENCE_PRECISION_HINT": "f32"}}
    monkeypatch.setenv("OVSERVE_PLUGIN_CONFIG", '{"CPU": 1}')
    with pytest.raises(ValueError, match=r"\$OVSERVE_PLUGIN_CONFIG: 'CPU' must map to an"):
        env_plugin_config()
    monkeypatch.setenv("OVSERVE_OVERRIDE_GENERATION_CONFIG", "[1]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        env_generation_overrides()
    monkeypatch.setenv("OVSERVE_OVERRIDE_GENERATION_CONFIG", "")
    assert env_generation_overrides() == {}
