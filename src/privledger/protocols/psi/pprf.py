"""GGM puncturable PRF over fixed-key AES, vectorised over many trees (for :mod:`.vole`).

A tree of depth ``d`` expands a 16-byte root into ``2^d`` leaves; a node ``s`` has the children
``G_0(s) = pi_0(s) xor s`` and ``G_1(s) = pi_1(s) xor s`` with ``pi_b`` AES-128 under the public
keys :data:`LEFT_KEY` and :data:`RIGHT_KEY` (the fixed-key, Matyas-Meyer-Oseas-style length
doubling PRG of libOTe's PPRF; Guo, Katz, Wang, Yu, "Efficient and Secure Multiparty
Computation from Fixed-Key Block Ciphers", S&P 2020, model ``pi_b`` as ideal permutations).

Layout: all ``t`` trees advance together, level-major. Level ``l`` is a ``(2^l, t, 16)`` array;
child ``b`` of node ``j`` is node ``b 2^l + j`` of level ``l + 1``, so the bit chosen at level
``l + 1`` is bit ``l`` of the index, and a leaf index ``p`` is reached through the nodes
``p mod 2^l``. Each level is then two AES calls writing contiguous halves (no interleaving
copies), and the leaves come out as ``(2^d, t, 16)``: flattened, leaf ``p`` of tree ``i`` is
entry ``p t + i`` -- libOTe's *interleaved* PPRF output format, which its silent OT and VOLE
feed to the LPN code.

Puncturing (Boyle, Gilboa, Ishai, "Function Secret Sharing", and its use for silent OT/VOLE by
Boyle, Couteau, Gilboa, Ishai, Kohl, Scholl, CCS 2019): the holder of the roots publishes, per
tree and level ``l = 1 .. d``, the two *level sums* -- the XOR of the nodes with bit ``l - 1``
equal to 0 and of those with it equal to 1 -- each masked by one key of a random OT. A party that
knows a leaf index ``alpha`` and picks, at each level, the sum of the side *off* its path
rebuilds every node except those on the path to ``alpha``: it expands the nodes it knows, and
the one missing node off the path is that sum minus the known nodes of its side. It learns
nothing about leaf ``alpha`` (GGM leaves are pseudorandom given the co-path).

:func:`expand_full` is the root holder's side, :func:`expand_punctured` the puncturing party's;
the punctured leaf comes out as zero.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privledger.protocols.psi import jit

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

BLOCK = 16
LEFT_KEY = bytes.fromhex("3d5e1f9a7c2b4e608f1a2c3b4d5e6f70")  # public
RIGHT_KEY = bytes.fromhex("c4a1e2f3b5d60718293a4b5c6d7e8f91")  # public
MAX_DEPTH = 32
_AES_CHUNK = 1 << 26  # bytes per AES call


class Buffers:
    """Room to expand ``trees`` trees of depth ``depth`` without fresh allocations: the
    leaves' buffer and a scratch half its size (levels alternate between the two so that the
    last one lands in the leaves' buffer), each with the 16 bytes of slack of
    :func:`expand_level`. Reused across expansions, their pages are faulted in once (fresh
    pages cost ~14 us each on this machine's VM when the host has reclaimed them). The leaves
    returned by an expansion live in ``leaves`` until the next expansion into it."""

    def __init__(self, trees: int, depth: int) -> None:
        if trees < 1 or not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"need trees >= 1 and a depth in 1..{MAX_DEPTH}")
        self.trees, self.depth = trees, depth
        self.leaves = np.empty((trees << depth) * BLOCK + BLOCK, dtype=np.uint8)
        self.scratch = np.empty((trees << (depth - 1)) * BLOCK + BLOCK, dtype=np.uint8)

    def fits(self, trees: int, depth: int) -> bool:
        return trees <= self.trees and depth == self.depth

    def target(self, trees: int, depth: int, level: int) -> U8:
        """The buffer that level ``level + 1`` of a ``depth``-level expansion goes into."""
        if not self.fits(trees, depth):
            raise ValueError("buffers do not fit these trees")
        return self.leaves if (depth - 1 - level) % 2 == 0 else self.scratch


def _target(buffers: Buffers | None, trees: int, depth: int, level: int) -> U8 | None:
    return None if buffers is None else buffers.target(trees, depth, level)


def expand_level(
    nodes: U8, out: U8 | None = None, punctured: Puncture | None = None, prefix: bool = False
) -> tuple[U8, U8]:
    """Children of every node and the two level sums: ``(w, t, 16)`` -> ``(2 w, t, 16)``,
    child ``b`` of node ``j`` at ``b w + j``, and ``(2, t, 16)``, the XOR of the children whose
    newest path bit is 0, resp. 1; written into the flat byte buffer ``out`` when given
    (``2 w t 16 + 16`` bytes at least, not overlapping ``nodes``). With ``punctured``, the
    children of each tree's unknown node are left out of the sums and set to zero, but for the
    one off the path, which the chosen sum completes. With ``prefix`` (not punctured), the
    children come out as their prefix XOR in flat order (the sums are of the children).

    AES runs straight into the children's array: it has 16 bytes of slack at the end, which
    ``update_into`` asks for (``len + 15`` bytes of room); then one compiled pass (:mod:`.jit`)
    adds the parents and the sums. (Going through :func:`.ot.aes_ecb`, the last 16 MiB chunk
    of each call passes through a fresh spare buffer: in a new process every such buffer is
    new pages, ~0.4 s of page faults per party at 2^20 on this machine.)"""
    width, trees = nodes.shape[0], nodes.shape[1]
    parents = np.ascontiguousarray(nodes)
    size = parents.size
    if out is None:
        flat = np.empty(2 * size + BLOCK, dtype=np.uint8)
    elif out.ndim != 1 or len(out) < 2 * size + BLOCK:
        raise ValueError("output buffer too small")
    else:
        flat = out
    source = parents.reshape(-1)
    for side, key in enumerate((LEFT_KEY, RIGHT_KEY)):
        encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        base = side * size
        for lo in range(0, size, _AES_CHUNK):  # the slack of a chunk is the next one's start
            hi = min(lo + _AES_CHUNK, size)
            encryptor.update_into(source[lo:hi].data, flat[base + lo : base + hi + BLOCK].data)
    children: U8 = flat[: 2 * size].reshape(2 * width, trees, BLOCK)
    sums = np.empty((2, trees, BLOCK), dtype=np.uint8)
    path, off, chosen = punctured if punctured is not None else _FULL
    if prefix and punctured is not None:
        raise ValueError("no prefix XOR of punctured children")
    _finish_level(
        parents.view(np.uint64).reshape(width, trees, 2),
        children.view(np.uint64).reshape(2 * width, trees, 2),
        sums.view(np.uint64).reshape(2, trees, 2),
        path,
        off,
        chosen.view(np.uint64).reshape(-1, 2),
        prefix,
    )
    return children, sums


Puncture = tuple[I64, I64, U8]  # per tree: the unknown node, the side off the path, its sum
_FULL: Puncture = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, BLOCK), np.uint8))


@jit.kernel
def _finish_level(
    parents: U64, children: U64, sums: U64, path: I64, off: I64, chosen: U64, prefix: bool
) -> None:
    """:func:`expand_level`'s pass after AES: each child XOR its parent, summed per side and
    tree; with ``path`` (punctured), the unknown node's children are zero and left out, then
    the one off the path is its side's chosen sum minus the known ones; with ``prefix``, each
    child is stored as the XOR of it and all before it (the loop runs in flat order)."""
    width, trees = parents.shape[0], parents.shape[1]
    punctured = len(path) > 0
    running_low = running_high = np.uint64(0)
    for side in range(2):
        for tree in range(trees):
            sums[side, tree, 0] = sums[side, tree, 1] = 0
        for j in range(width):
            row = side * width + j
            for tree in range(trees):
                if punctured and path[tree] == j:
                    children[row, tree, 0] = children[row, tree, 1] = 0
                    continue
                low = children[row, tree, 0] ^ parents[j, tree, 0]
                high = children[row, tree, 1] ^ parents[j, tree, 1]
                if prefix:
                    running_low ^= low
                    running_high ^= high
                    children[row, tree, 0] = running_low
                    children[row, tree, 1] = running_high
                else:
                    children[row, tree, 0] = low
                    children[row, tree, 1] = high
                sums[side, tree, 0] ^= low
                sums[side, tree, 1] ^= high
    if punctured:
        for tree in range(trees):
            side = off[tree]
            row = side * width + path[tree]
            children[row, tree, 0] = sums[side, tree, 0] ^ chosen[tree, 0]
            children[row, tree, 1] = sums[side, tree, 1] ^ chosen[tree, 1]


def expand_full(
    roots: U8, depth: int, buffers: Buffers | None = None, prefix: bool = False
) -> tuple[U8, U8]:
    """The root holder's side: ``(leaves (2^d, t, 16), sums (d, 2, t, 16))``, where
    ``sums[l - 1, b]`` is the XOR of the level-``l`` nodes whose bit ``l - 1`` is ``b``
    (the leaves in ``buffers`` when given). With ``prefix``, the leaves come out as their
    prefix XOR in flat order (the accumulator of the EA code, :func:`.exacc.accumulate`,
    done in the last level's pass instead of another pass over them)."""
    _check(roots, depth)
    trees = len(roots)
    nodes = np.ascontiguousarray(roots).reshape(1, trees, BLOCK)
    sums = np.empty((depth, 2, trees, BLOCK), dtype=np.uint8)
    for level in range(depth):
        last = prefix and level == depth - 1
        nodes, sums[level] = expand_level(nodes, _target(buffers, trees, depth, level), prefix=last)
    return nodes, sums


def off_path_bits(points: I64, depth: int) -> npt.NDArray[np.bool_]:
    """``(d, t)``: at level ``l`` (row ``l - 1``) the side off the path to ``points``, the
    negated bit ``l - 1`` of each point. These are the puncturing party's OT choices."""
    shifts = np.arange(depth, dtype=np.int64)[:, None]
    bits: npt.NDArray[np.bool_] = ((points[None, :] >> shifts) & 1) == 0
    return bits


def expand_punctured(
    points: I64, chosen: U8, depth: int, buffers: Buffers | None = None
) -> tuple[U8, U8]:
    """The puncturing party's side: leaves ``(2^d, t, 16)``, every leaf but ``points[i]`` of
    tree ``i`` equal to the root holder's, that one zero, and each tree's XOR of these leaves
    ``(t, 16)``. ``chosen[l - 1, i]`` is the level-``l`` sum of the side :func:`off_path_bits`
    names. (The leaves in ``buffers`` when given.)"""
    trees = len(points)
    if chosen.shape != (depth, trees, BLOCK):
        raise ValueError("need one chosen level sum per level and tree")
    if trees and (points.min() < 0 or points.max() >= 1 << depth):
        raise ValueError("punctured points must be leaf indices")
    off = off_path_bits(points, depth).astype(np.int64)
    nodes = np.zeros((1, trees, BLOCK), dtype=np.uint8)
    sums = np.zeros((2, trees, BLOCK), dtype=np.uint8)
    for level in range(depth):
        path = points & ((1 << level) - 1)  # the unknown node of the parent level
        puncture = (path, off[level], np.ascontiguousarray(chosen[level]))
        nodes, sums = expand_level(nodes, _target(buffers, trees, depth, level), puncture)
    # the leaves' XOR without a pass over them: the off-path side's is its chosen sum, the
    # path side's the last level's sum of its known leaves (the punctured one is zero)
    column = np.arange(trees)
    totals: U8 = sums[1 - off[depth - 1], column] ^ chosen[depth - 1]
    return nodes, totals


def _check(roots: U8, depth: int) -> None:
    if roots.ndim != 2 or roots.shape[1] != BLOCK:
        raise ValueError("roots are (t, 16) bytes")
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"tree depth must be 1..{MAX_DEPTH}")
