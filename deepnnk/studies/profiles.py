"""Profiles: every notebook runs at one of three sizes, defined the same way for all.

- ``smoke``: seconds, for the tests;
- ``quick``: minutes on 2 CPU cores, the default of ``reproduce.sh``;
- ``paper``: the paper's sizes.

Each study module holds its sizes as ``PROFILES = {"smoke": {...}, "quick": {...}, "paper":
{...}}`` (plain literals) and hands them out with :func:`pick`, so a notebook's only profile code
is ``sizes = study.profile(profile)``.
"""

from __future__ import annotations

import copy

PROFILES = ("smoke", "quick", "paper")


def check_profile(profile: str) -> str:
    """``profile`` if it is one of :data:`PROFILES`, else a ValueError naming them."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}.")
    return profile


def pick(table: dict[str, dict], profile: str) -> dict:
    """A copy of ``table[profile]`` (a study's sizes for one profile), checked."""
    check_profile(profile)
    missing = [p for p in PROFILES if p not in table]
    if missing:
        raise ValueError(f"the profile table lacks {missing}; define all of {PROFILES}.")
    return copy.deepcopy(table[profile])
