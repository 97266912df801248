"""Rebuild the shipped caniemail snapshot from a checkout of caniemail's repository.

Usage (documented in docs/preflight.md)::

    git clone --depth 1 https://github.com/hteumeuleu/caniemail /tmp/caniemail
    python -m dripline.preflight.refresh /tmp/caniemail

caniemail keeps one Markdown file per feature under ``_features/``; its front
matter holds ``stats`` (client family -> platform -> test date -> support) and
``notes_by_num``. Jekyll reads that front matter as YAML, but it indents with
tabs and leaves trailing commas, which strict YAML parsers refuse, so the flow
mappings are read here with a small tolerant parser instead of a YAML library.

The snapshot keeps, for each HTML/CSS/image feature, only the latest tested
support value per client and the notes those values point at: that is all the
lint needs, and it keeps the file small.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["SNAPSHOT", "build_snapshot", "main", "parse_front_matter"]

DATA_DIR = Path(__file__).resolve().parent / "data"
SNAPSHOT = DATA_DIR / "caniemail.json"
LICENCE = DATA_DIR / "caniemail-LICENSE.txt"
SOURCE = "https://github.com/hteumeuleu/caniemail"
_CATEGORIES = ("html", "css", "image")
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<punct>[{}:,\[\]])|(?P<bare>[^\s{}:,\[\]"]+))', re.S
)


class FeatureFileError(ValueError):
    """A caniemail feature file whose front matter cannot be read."""


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise FeatureFileError(f"unexpected text near {text[position : position + 30]!r}")
        position = match.end()
        if match.group("str") is not None:
            tokens.append(match.group("str"))
        else:
            tokens.append(match.group("punct") or match.group("bare"))
    return tokens


def _value(tokens: list[str], index: int) -> tuple[Any, int]:
    token = tokens[index]
    if token == "{":
        mapping: dict[str, Any] = {}
        index += 1
        while tokens[index] != "}":
            key = _scalar(tokens[index])
            if tokens[index + 1] != ":":
                raise FeatureFileError(f"expected ':' after {key!r}")
            mapping[key], index = _value(tokens, index + 2)
            if tokens[index] == ",":
                index += 1  # a trailing comma before "}" is allowed, as Jekyll allows it
        return mapping, index + 1
    return _scalar(token), index + 1


def _scalar(token: str) -> str:
    if token.startswith('"'):
        return str(json.loads(token))
    return token


def parse_front_matter(text: str) -> dict[str, Any]:
    """The front matter of one ``_features/*.md`` file as a dict (flow mappings included).

    Raises:
        FeatureFileError: the file has no front matter or a mapping is malformed.
    """
    parts = re.split(r"(?m)^---\s*$", text, maxsplit=2)
    if len(parts) < 3:
        raise FeatureFileError("no front matter")
    data: dict[str, Any] = {}
    lines = parts[1].splitlines()
    index = 0
    while index < len(lines):
        # Keys are bare (stats:) or quoted ("notes_by_num": in html-lists.md).
        match = re.match(r'^"?([A-Za-z_][\w-]*)"?:\s*(.*)$', lines[index])
        index += 1
        if match is None:
            continue
        key, rest = match.groups()
        if rest.startswith("{"):
            block = [rest]
            while block_depth(block) > 0 and index < len(lines):
                block.append(lines[index])
                index += 1
            try:
                data[key] = _value(_tokens("\n".join(block)), 0)[0]
            except (IndexError, json.JSONDecodeError, FeatureFileError) as err:
                raise FeatureFileError(f"{key}: {err}") from err
        else:
            data[key] = _scalar(rest.strip()) if rest.strip().startswith('"') else rest.strip()
    return data


def block_depth(lines: list[str]) -> int:
    """Open braces minus closed ones, outside strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', "\n".join(lines))
    return text.count("{") - text.count("}")


def _latest(versions: dict[str, str]) -> str:
    # caniemail lists test dates/versions oldest first; the last one is today's support.
    return str(list(versions.values())[-1]).strip() if versions else "u"


def build_snapshot(checkout: Path, commit: str, date: str) -> dict[str, Any]:
    """The trimmed snapshot for ``checkout`` (a caniemail working tree)."""
    features: dict[str, Any] = {}
    clients: set[str] = set()
    for path in sorted((checkout / "_features").glob("*.md")):
        if path.name.startswith("_"):
            continue  # _template.md
        try:
            front = parse_front_matter(path.read_text(encoding="utf-8"))
        except FeatureFileError as err:
            raise FeatureFileError(f"{path}: {err}") from err
        if front.get("category") not in _CATEGORIES:
            continue
        support: dict[str, str] = {}
        for family, platforms in (front.get("stats") or {}).items():
            for platform, versions in (platforms or {}).items():
                support[f"{family}.{platform}"] = _latest(versions or {})
        clients |= set(support)
        used = {n for value in support.values() for n in re.findall(r"#(\d+)", value)}
        notes = {k: v for k, v in (front.get("notes_by_num") or {}).items() if k in used}
        features[path.stem] = {
            "title": front.get("title", path.stem),
            "category": front["category"],
            "support": support,
            "notes": notes,
        }
    return {
        "names": _nicenames(checkout / "_data" / "nicenames.yml"),
        "source": SOURCE,
        "commit": commit,
        "date": date,
        "licence": "MIT, Copyright (c) 2019 Rémi Parmentier: see caniemail-LICENSE.txt",
        "clients": sorted(clients),
        "features": features,
    }


def _nicenames(path: Path) -> dict[str, dict[str, str]]:
    """caniemail's display names of client families and platforms (a two-level YAML map)."""
    names: dict[str, dict[str, str]] = {"family": {}, "platform": {}}
    section = ""
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for line in lines:
        top = re.match(r"^(\w+):\s*$", line)
        if top:
            section = top.group(1)
            continue
        entry = re.match(r'^\s+([\w-]+):\s*"(.*)"\s*$', line)
        if entry and section in names:
            names[section][entry.group(1)] = entry.group(2)
    return names


def _git(checkout: Path, *args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dripline.preflight.refresh", description=__doc__.splitlines()[0]
    )
    parser.add_argument("checkout", type=Path, help="a caniemail working tree")
    parser.add_argument("--commit", help="its commit (default: asked of git)")
    parser.add_argument("--date", help="its commit date, YYYY-MM-DD (default: asked of git)")
    parser.add_argument("--out", type=Path, default=SNAPSHOT, help="where to write the JSON")
    args = parser.parse_args(argv)
    if not (args.checkout / "_features").is_dir():
        print(f"Error: {args.checkout} has no _features/ folder", file=sys.stderr)
        return 1
    commit = args.commit or _git(args.checkout, "rev-parse", "HEAD") or "unknown"
    date = args.date or _git(args.checkout, "log", "-1", "--format=%cs") or "unknown"
    try:
        snapshot = build_snapshot(args.checkout, commit, date)
    except FeatureFileError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    args.out.write_text(
        json.dumps(snapshot, separators=(",", ":"), sort_keys=True, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    if (args.checkout / "LICENSE").is_file() and args.out == SNAPSHOT:
        shutil.copyfile(args.checkout / "LICENSE", LICENCE)
    print(f"{args.out}: {len(snapshot['features'])} features, commit {commit[:12]} of {date}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
