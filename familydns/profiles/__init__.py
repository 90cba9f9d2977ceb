"""Profiles: ages, devices, schedules, safe search, and the pure decide() over a snapshot.

The resolver builds a PolicySnapshot with ``snapshot.build_snapshot()`` at load and on
every change, then calls ``decide.decide()`` for each query and ``decide.decide_chain()``
on each answer's CNAME chain. Nothing is re-exported here: a function named like its
module would hide the module (``familydns.profiles.decide``).
"""
