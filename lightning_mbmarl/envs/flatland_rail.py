"""Rail geometry and tree features for the Flatland adapter (:mod:`lightning_mbmarl.envs.flatland`), on numpy alone.

Directions are Flatland's: 0 north, 1 east, 2 south, 3 west; a cell is ``(row, col)`` on an ``H x W`` grid.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

#: (row, col) step of a move in each direction
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])
#: features of one tree-observation node (Flatland's ``Node`` fields before ``childs``)
NODE_FEATURES = 12
DISTANCE_FEATURES = slice(0, 7)  # dist_own_target ... dist_to_next_branch, dist_min_to_target (cells)
COUNT_FEATURES = [7, 8, 11]  # trains in the same / opposite direction, trains ready to depart
MALFUNCTION_FEATURE, SPEED_FEATURE = 9, 10
BRANCHES = "LFRB"  # the order Flatland's TreeObsForRailEnv explores a node's children in


def transitions(grid: np.ndarray) -> np.ndarray:
    """``bool [H, W, 4, 4]``: whether a train in a cell heading ``d`` may leave it heading ``o``.

    ``grid`` is Flatland's ``rail.grid`` (``uint16 [H, W]``): each cell packs its 16 transitions heading-in
    major, north first, most significant bit first.
    """
    d = np.arange(4)[:, None]
    o = np.arange(4)[None, :]
    return ((grid.astype(np.int64)[..., None, None] >> ((3 - d) * 4 + (3 - o))) & 1).astype(bool)


def neighbours(trans: np.ndarray) -> np.ndarray:
    """``int64 [H, W, 4, 2]``: the cell a train leaving each cell heading ``o`` enters (clipped to the grid;
    only read where the transition exists)."""
    H, W = trans.shape[:2]
    cells = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), -1)[:, :, None, :] + MOVES
    return np.clip(cells, 0, [H - 1, W - 1])


def decision_cells(trans: np.ndarray, targets: Sequence[tuple[int, int]]) -> np.ndarray:
    """``bool [H, W, 4]``: where a train chooses its way under the reduced action set (the released MABL rule).

    Junction cells (more than two transitions: switches and crossings) and target cells in every heading, and every
    (cell, heading) whose next cell is one of those: a train can pick a branch on a switch, and wait in front of a
    junction or a target. Elsewhere the track leads one way only and an autopilot drives.
    """
    special = trans.sum((2, 3)) > 2
    for row, col in targets:
        special[row, col] = True
    ahead = neighbours(trans)
    leads_in = (trans & special[ahead[..., 0], ahead[..., 1]][:, :, None, :]).any(-1)
    return special[:, :, None] | leads_in


def options(trans: np.ndarray, cell: tuple[int, int], heading: int) -> list[int]:
    """The headings a train in ``cell`` heading ``heading`` may leave with, leftmost first (turning left,
    straight on, turning right; a dead end's U-turn is not among them)."""
    return [o % 4 for o in (heading - 1, heading, heading + 1) if trans[cell[0], cell[1], heading, o % 4]]


def find_deadlocks(cells: Sequence[tuple[int, int] | None], headings: Sequence[int], trans: np.ndarray) -> np.ndarray:
    """``bool [N]``: trains on the map that can never move again.

    A train is blocked when every cell it could enter holds another train. Blocked trains whose blockers all
    are blocked themselves (trains facing each other on one track, a queue behind them, a ring of such) form a
    deadlock; a blocked train waiting behind a train that can still move is not deadlocked. ``cells[i]`` is
    None for trains off the map (not departed or arrived).
    """
    occupant = {cell: i for i, cell in enumerate(cells) if cell is not None}
    blockers: dict[int, list[int]] = {}
    for i, cell in enumerate(cells):
        if cell is None:
            continue
        ahead = [(cell[0] + MOVES[o, 0], cell[1] + MOVES[o, 1]) for o in np.flatnonzero(trans[cell][headings[i]])]
        if ahead and all(a in occupant for a in ahead):
            blockers[i] = [occupant[a] for a in ahead]
    changed = True
    while changed:  # drop trains one of whose blockers may still move, until none is left to drop
        free = [i for i, by in blockers.items() if any(j not in blockers for j in by)]
        for i in free:
            del blockers[i]
        changed = bool(free)
    deadlocked = np.zeros(len(cells), bool)
    deadlocked[list(blockers)] = True
    return deadlocked


def tree_size(depth: int) -> int:
    """Nodes of a tree observation of ``depth`` (four children per node): 85 at depth 3."""
    return (4 ** (depth + 1) - 1) // 3


def tree_features(root: Any, depth: int, distance_scale: float, n_agents: int, malfunction_scale: float) -> np.ndarray:
    """Flatland's ``TreeObsForRailEnv`` observation flattened and normalised: ``float32 [tree_size(depth) * 12]``.

    Nodes in pre-order (a node, then its L, F, R, B subtrees), 12 features each, mapped into [0, 1]:
    distances in cells divided by ``distance_scale`` (distances not found, +inf in Flatland, and longer ones
    read 1); train counts divided by ``n_agents``; the malfunction steps left divided by
    ``malfunction_scale``; the slowest speed as is. Every feature of a missing branch is -1.
    """
    raw = np.full((tree_size(depth), NODE_FEATURES), np.nan)
    _write(root, raw, 0, depth)
    missing = np.isnan(raw[:, 0])
    out = np.empty_like(raw)
    out[:, DISTANCE_FEATURES] = raw[:, DISTANCE_FEATURES] / distance_scale
    out[:, COUNT_FEATURES] = raw[:, COUNT_FEATURES] / n_agents
    out[:, MALFUNCTION_FEATURE] = raw[:, MALFUNCTION_FEATURE] / malfunction_scale
    out[:, SPEED_FEATURE] = raw[:, SPEED_FEATURE]
    out = np.clip(np.nan_to_num(out, nan=0.0, posinf=1.0), 0.0, 1.0)
    out[missing] = -1.0
    return out.reshape(-1).astype(np.float32)


def _write(node: Any, rows: np.ndarray, at: int, depth: int) -> int:
    """Write ``node``'s subtree into ``rows`` from row ``at``; returns the row after it. Flatland marks a missing
    branch with -inf instead of a node; its rows stay NaN."""
    if not hasattr(node, "childs"):
        return at + tree_size(depth)
    rows[at] = node[:NODE_FEATURES]
    at += 1
    if depth > 0:
        for branch in BRANCHES:
            at = _write(node.childs.get(branch, -np.inf), rows, at, depth - 1)
    return at
