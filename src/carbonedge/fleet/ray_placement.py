"""Mapping fleet nodes to Ray nodes for :class:`~carbonedge.fleet.ray_backend.RayFleet`.

Pure (no ray import): it works on the node list that ``ray.nodes()`` returns, so it is unit-tested
without a cluster. Three ways to pin the actor of edge node ``N`` (paper III.F: one deployer
endpoint per edge device) to a Ray node:

- ``"resource"`` (default): the actor asks for a sliver of the custom resource ``edge:N``, which
  only the Ray node started with ``--resources='{"edge:N": 1}'`` has. The cluster's own
  configuration says which machine is which edge node.
- a mapping ``{"N": "<ray node id hex> | <node IP address> | <Ray node name>"}``: the actor is
  pinned with ``NodeAffinitySchedulingStrategy(node_id, soft=False)``.
- ``"order"``: the i-th fleet node goes to the i-th alive Ray node, the head first, then the
  others sorted by (IP address, node id). Deterministic but arbitrary: for quick experiments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from carbonedge.errors import ConfigError
from carbonedge.fleet.spec import FleetSpec

PlacementMode = Literal["resource", "order"]
Placement = PlacementMode | Mapping[str, str]

RESOURCE_PREFIX = "edge:"
# The amount of ``edge:N`` an actor requests: small, so that several actors (segments, restarts)
# fit on the node that advertises 1 unit of it.
RESOURCE_SLIVER = 0.001

__all__ = [
    "RESOURCE_PREFIX",
    "RESOURCE_SLIVER",
    "Pin",
    "Placement",
    "PlacementMode",
    "edge_resource",
    "resolve_placement",
]


def edge_resource(node: str) -> str:
    """The custom resource that marks the Ray node hosting edge node ``node``: ``edge:<node>``."""
    return f"{RESOURCE_PREFIX}{node}"


@dataclass(frozen=True)
class Pin:
    """Where an edge node's actor must run.

    ``kind="resource"``: request ``{value: RESOURCE_SLIVER}``; ``kind="node_id"``: node affinity
    to the Ray node whose id (hex) is ``value``. ``ray_node_id`` is the Ray node expected to host
    the actor (known before start for both kinds when the cluster advertises the resource).
    """

    node: str
    kind: Literal["resource", "node_id"]
    value: str
    ray_node_id: str


def _alive(ray_nodes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [n for n in ray_nodes if n.get("Alive", n.get("alive", False))]


def _by_order(ray_nodes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def key(n: Mapping[str, Any]) -> tuple[int, str, str]:
        head = "node:__internal_head__" in n.get("Resources", {})
        return (0 if head else 1, str(n.get("NodeManagerAddress", "")), str(n["NodeID"]))

    return sorted(_alive(ray_nodes), key=key)


def _match(value: str, ray_nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    ids = [str(n["NodeID"]) for n in ray_nodes if str(n["NodeID"]) == value]
    if ids:
        return ids
    return [
        str(n["NodeID"])
        for n in ray_nodes
        if value in (n.get("NodeManagerAddress"), n.get("NodeName"))
    ]


def resolve_placement(
    spec: FleetSpec, placement: Placement, ray_nodes: Sequence[Mapping[str, Any]]
) -> dict[str, Pin]:
    """Pin every node of ``spec`` to an alive Ray node; ConfigError naming the node otherwise.

    ``ray_nodes`` is ``ray.nodes()`` (dicts with ``NodeID``, ``Alive``, ``Resources``,
    ``NodeManagerAddress``, ``NodeName``).
    """
    alive = _alive(ray_nodes)
    if not alive:
        raise ConfigError("ray placement: the Ray cluster has no alive node")
    pins: dict[str, Pin] = {}
    if placement == "resource":
        for node in spec.nodes:
            res = edge_resource(node.name)
            hosts = [str(n["NodeID"]) for n in alive if res in n.get("Resources", {})]
            if not hosts:
                offered = sorted(
                    r
                    for n in alive
                    for r in n.get("Resources", {})
                    if r.startswith(RESOURCE_PREFIX)
                )
                raise ConfigError(
                    f"ray placement: node {node.name!r} needs a Ray node started with the custom"
                    f" resource {res!r} (e.g. ray start --resources='{{\"{res}\": 1}}');"
                    f" offered: {', '.join(offered) or 'none'}"
                )
            if len(hosts) > 1:
                raise ConfigError(
                    f"ray placement: resource {res!r} of node {node.name!r} is offered by"
                    f" {len(hosts)} Ray nodes; it must name exactly one"
                )
            pins[node.name] = Pin(node.name, "resource", res, hosts[0])
        return pins
    if placement == "order":
        ordered = _by_order(alive)
        if len(ordered) < len(spec.nodes):
            raise ConfigError(
                f"ray placement 'order': {len(spec.nodes)} fleet nodes but only"
                f" {len(ordered)} alive Ray nodes"
            )
        for node, host in zip(spec.nodes, ordered, strict=False):
            nid = str(host["NodeID"])
            pins[node.name] = Pin(node.name, "node_id", nid, nid)
        return pins
    if not isinstance(placement, Mapping):
        raise ConfigError(
            f"ray placement must be 'resource', 'order' or a mapping, got {placement!r}"
        )
    unknown = sorted(set(placement) - set(spec.names))
    if unknown:
        raise ConfigError(
            f"ray placement: {unknown[0]!r} is not a fleet node (nodes: {', '.join(spec.names)})"
        )
    for node in spec.nodes:
        value = placement.get(node.name)
        if value is None:
            raise ConfigError(f"ray placement: node {node.name!r} is not mapped to a Ray node")
        found = _match(str(value), alive)
        if len(found) != 1:
            what = "no alive Ray node" if not found else f"{len(found)} Ray nodes"
            raise ConfigError(
                f"ray placement[{node.name!r}] = {value!r} matches {what}"
                " (give a node id, an IP address or a node name)"
            )
        pins[node.name] = Pin(node.name, "node_id", found[0], found[0])
    return pins
