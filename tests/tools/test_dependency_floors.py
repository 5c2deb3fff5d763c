"""The test extras allow no version of a dependency with a known, fixed vulnerability
(issue 23: `requests>=2.31` allowed versions before the fixes of CVE-2024-35195 and
CVE-2024-47081), and the CI constraints file pins one at or past the floor."""

from __future__ import annotations

import tomllib

from helpers import ROOT
from packaging.requirements import Requirement
from packaging.version import Version

# package -> the first version without the known vulnerabilities, and which ones
FLOORS = {"requests": ("2.32.4", "CVE-2024-35195, CVE-2024-47081")}


def test_the_test_extras_exclude_versions_with_known_vulnerabilities() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["optional-dependencies"]["test"]
              + project["dependencies"]]
    pins = dict(line.split("==") for line in (ROOT / "tools" / "constraints.txt").read_text()
                .splitlines() if "==" in line and not line.startswith("#"))
    for name, (floor, cves) in FLOORS.items():
        req = next(r for r in wanted if r.name == name)
        major, minor, patch = Version(floor).release[:3]
        below = f"{major}.{minor}.{patch - 1}"  # the last release before the fix
        assert not req.specifier.contains(below, prereleases=True), (
            f"{req} allows {below}, before the fixes of {cves}")
        assert req.specifier.contains(floor)
        assert Version(pins[name]) >= Version(floor), (name, pins[name])
