"""Every command fails at start on a bad config, naming the file and the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

BAD = {
    "simulate": ("--scenario", "seed: 1\nenterprise: {id: acme}\nsite: {id: p}\n"
                 "timeline: {lead_in_s: 1, duration_s: 5, lead_out_s: 1}\n"
                 "areas: [{id: a, lines: [{id: l, machines: "
                 "[{id: m, protocol: opcua, port: 4840, speed_factr: 2}]}]}]\n",
                 "speed_factr"),
    "edge": ("--config", "agent_id: e1\nmqtt: {host: 127.0.0.1, port: nope}\n"
             "outbox: {path: o.db}\ndevices: []\n", "mqtt.port"),
    "gateway": ("--config", "mqtt: {host: 127.0.0.1}\nstore: {embeded: {path: s.db}}\n",
                "store.embeded"),
    "server": ("--config", "registry: r.yaml\nstore: {embedded: {path: s.db}}\n"
               "oee: {stale_after_s: -1}\n", "oee.stale_after_s"),
    "cluster": ("--config", "enterprises: [{id: acme, sha256: nothex}]\n", "enterprises.0"),
}


@pytest.mark.parametrize("command", sorted(BAD))
def test_bad_config_fails_at_start_naming_file_and_key(tmp_path, command):
    flag, text, key = BAD[command]
    path = tmp_path / f"{command}.yaml"
    path.write_text(text)
    r = subprocess.run([sys.executable, "-m", "shopfloor", command, flag, str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert str(path) in r.stderr and key in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "shopfloor", "gateway", "--config",
                        str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "file not found" in r.stderr


@pytest.mark.parametrize("command", ["up", "simulate", "edge", "gateway", "server", "cluster"])
def test_help_lists_options(command):
    r = subprocess.run([sys.executable, "-m", "shopfloor", command, "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage: shopfloor " + command in r.stdout


def _commands(parser, prefix=()):
    """(argv prefix, parser) for the program and every command and subcommand."""
    import argparse

    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))


def _option_entries(help_text: str) -> dict[str, str]:
    """Option string -> its whole help entry, from the 'options:' section."""
    section = help_text.split("\noptions:\n", 1)[1]
    entries: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif current and line.startswith("   "):
            entries[current] += " " + line.strip()
        elif line.strip():
            current = None
    return {k: " ".join(v.split()) for k, v in entries.items()}


def test_every_option_of_every_command_shows_its_default():
    from shopfloor.cli import build_parser

    walked = []
    for prefix, parser in _commands(build_parser()):
        entries = _option_entries(parser.format_help())
        for action in parser._actions:
            if not action.option_strings:
                continue
            entry = entries[action.option_strings[0]]
            flag = action.nargs == 0
            assert flag or "(default: " in entry or "(required)" in entry, (prefix, entry)
            if not flag and action.default not in (None, False) and "(default: " in entry:
                shown = entry.rsplit("(default: ", 1)[1]
                assert shown.startswith(str(action.default)) or "default" in action.help, \
                    (prefix, entry)
        walked.append(" ".join(prefix))
    assert {"", "up", "simulate", "edge", "edge run", "edge check", "edge discover",
            "edge cert", "gateway", "server"} <= set(walked)


def test_help_of_a_subcommand_from_the_shell():
    r = subprocess.run([sys.executable, "-m", "shopfloor", "edge", "cert", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "(default: 3650)" in " ".join(r.stdout.split()), r.stdout
