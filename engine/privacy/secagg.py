"""Secure aggregation, simulated: the server learns the sum of the clients' updates and nothing
else (Bonawitz et al. 2017, "Practical Secure Aggregation for Privacy-Preserving Machine
Learning", CCS; https://eprint.iacr.org/2017/281).

Per round and group of clients that average together, the protocol's four steps are executed on
real tensors:

0. **Advertise keys.** Every selected client sends two public keys; the server broadcasts them.
1. **Share keys.** Every client splits its mask seed and its secret key into Shamir shares
   (threshold ``t``) and sends one, encrypted, to every other client through the server.
2. **Masked input.** A client encodes its weighted update in fixed point in the ring
   ``Z_{2^62}`` (:data:`FRACTION_BITS` fractional bits), adds a *self mask* from its own seed
   and, for every other client ``v``, ``+PRG(s_uv)`` if ``u < v`` else ``-PRG(s_uv)``: the pairwise
   masks cancel in the sum, and each masked vector alone is uniformly random.
3. **Unmasking.** The survivors send the shares that let the server remove their self masks and,
   for each client that dropped out after step 1, recompute its pairwise masks from its secret key
   and remove them. With fewer than ``t`` survivors nothing can be recovered: the round's update
   is discarded (and said so).

Simulated: key agreement, Shamir sharing and encryption are not computed (pair seeds derive from
the run seed, the round, the group and the pair: :func:`pair_seed`; "reconstructing" a seed means
recomputing it once at least ``t`` survivors hold shares), but their messages are counted in bytes
(:func:`traffic`) and on the virtual clock, and the masking, summing and unmasking are real
integer arithmetic on the update tensors, so the decoded sum equals the plain one up to fixed-point
rounding (``2^-25`` per value and client) and each masked upload is far from the update it hides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from engine.core.seeding import derive_seed

RING_BITS = 62
MODULUS = 1 << RING_BITS
"""Ring of the masked values: int64 arithmetic mod ``2^62`` (a sum of two fits in an int64)."""
FRACTION_BITS = 24
"""Fixed-point precision: a value ``v`` is encoded as ``round(v * 2^24)`` (resolution 6e-8)."""
LIMIT = float(1 << (RING_BITS - 1 - FRACTION_BITS))
"""Largest magnitude a *sum* may reach before it wraps around the ring (``2^37``)."""
ELEMENT_BYTES = 8
"""Bytes of one masked ring element on the wire."""

PUBLIC_KEY_BYTES = 32
"""An X25519 public key; each client advertises two (for encryption and for masking)."""
SHARE_BYTES = 2 * 4 + 2 * 32 + 12 + 16
"""One encrypted pair of Shamir shares: two client ids, two 32-byte shares, AES-GCM nonce and tag."""
UNMASK_SHARE_BYTES = 4 + 32
"""One share sent in the unmasking step: the id it belongs to and the 32-byte share."""
ID_BYTES = 4
"""A client id in the server's lists of survivors and dropouts."""

PRG_OPS_PER_ELEMENT = 8.0
"""Assumed cost of expanding and adding one 8-byte mask element, in operations of a tier's
sustained FLOP/s (a stream cipher costs about one operation per byte)."""
KEY_AGREEMENT_OPS = 2e5
"""Assumed cost of one X25519 key agreement (about 120k cycles on a laptop core), in operations."""


class SecureAggregationFailed(Exception):
    """A round whose sum cannot be computed securely (too few survivors, too few clients, or
    values the ring cannot hold); the message says why. Not a user error: the run goes on."""


def pair_seed(run_seed: int, rnd: int, group: str, u: int, v: int) -> int:
    """The seed clients ``u`` and ``v`` agree on for round ``rnd`` (stands for their
    Diffie-Hellman key agreement)."""
    a, b = min(u, v), max(u, v)
    return derive_seed(run_seed, "secagg", "pair", rnd, group, a, b)


def self_seed(run_seed: int, rnd: int, group: str, u: int) -> int:
    """Client ``u``'s own mask seed for round ``rnd``."""
    return derive_seed(run_seed, "secagg", "self", rnd, group, u)


def prg(seed: int, n: int) -> Tensor:
    """``n`` uniform ring elements from ``seed`` (the pseudo-random generator of the masks)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, MODULUS, (n,), generator=g, dtype=torch.int64)


def encode(x: Tensor) -> Tensor:
    """Fixed-point encoding of a float vector into the ring.

    :raises SecureAggregationFailed: a value is not finite or too large for the ring.
    """
    x64 = x.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(x64).all()):
        raise SecureAggregationFailed(
            "a client's update holds NaN or infinite values, which the masked "
            "fixed-point encoding cannot carry"
        )
    if x64.numel() and float(x64.abs().max()) >= LIMIT:
        raise SecureAggregationFailed(
            f"a client's update holds values beyond +/-{LIMIT:.3g}, outside the secure aggregation ring"
        )
    return torch.remainder(torch.round(x64 * (1 << FRACTION_BITS)).to(torch.int64), MODULUS)


def decode(y: Tensor) -> Tensor:
    """A ring vector back to float64 (values past half the ring are negative)."""
    signed = torch.where(y >= MODULUS // 2, y - MODULUS, y)
    return signed.to(torch.float64) / (1 << FRACTION_BITS)


def add(a: Tensor, b: Tensor) -> Tensor:
    """``a + b`` in the ring."""
    return torch.remainder(a + b, MODULUS)


def sub(a: Tensor, b: Tensor) -> Tensor:
    """``a - b`` in the ring."""
    return torch.remainder(a - b, MODULUS)


def threshold_count(n_selected: int, threshold: float) -> int:
    """Shamir threshold ``t`` for ``n_selected`` clients: ``ceil(threshold x n)``, at least 2."""
    return max(2, math.ceil(threshold * n_selected - 1e-9))


def mask(x: Tensor, u: int, members: Sequence[int], run_seed: int, rnd: int, group: str) -> Tensor:
    """Client ``u``'s masked upload: its encoded vector plus its self mask plus ``+PRG(s_uv)`` for
    every other member ``v > u`` and ``-PRG(s_uv)`` for ``v < u``."""
    y = add(encode(x), prg(self_seed(run_seed, rnd, group, u), x.numel()))
    for v in members:
        if v == u:
            continue
        m = prg(pair_seed(run_seed, rnd, group, u, v), x.numel())
        y = add(y, m) if u < v else sub(y, m)
    return y


@dataclass
class Outcome:
    """What a secure sum produced: the decoded sum, who reported, who was recovered."""

    total: Tensor
    survivors: list[int]
    dropped: list[int]
    masked: dict[int, Tensor] = field(default_factory=dict)
    """The masked uploads the server received (kept for tests and inspection)."""


def secure_sum(
    vectors: Mapping[int, Tensor],
    members: Sequence[int],
    run_seed: int,
    rnd: int,
    group: str,
    threshold: float,
    keep_masked: bool = False,
) -> Outcome:
    """Run the protocol for one group and round.

    :param vectors: the flat float updates of the clients that reported (the survivors).
    :param members: every client that took part in the key agreement this round (the selected
        ones of the group); those without a vector dropped out after it.
    :raises SecureAggregationFailed: fewer than two members, fewer survivors than the threshold,
        or values the ring cannot hold.
    """
    members = sorted(int(m) for m in members)
    survivors = sorted(int(u) for u in vectors)
    dropped = [v for v in members if v not in vectors]
    if len(members) < 2:
        raise SecureAggregationFailed(
            "only one client took part, and a sum of one reveals that client's update"
        )
    t = threshold_count(len(members), threshold)
    if len(survivors) < t:
        raise SecureAggregationFailed(
            f"only {len(survivors)} of {len(members)} selected clients reported; recovering the masks of the "
            f"{len(dropped)} that dropped out needs shares from at least {t}"
        )
    n = next(iter(vectors.values())).numel()
    uploads = {u: mask(vectors[u].reshape(-1), u, members, run_seed, rnd, group) for u in survivors}
    total = torch.zeros(n, dtype=torch.int64)
    for y in uploads.values():
        total = add(total, y)
    for u in survivors:  # step 3: self masks of the survivors, from their reconstructed seeds
        total = sub(total, prg(self_seed(run_seed, rnd, group, u), n))
    for v in dropped:  # ...and the dropped clients' pairwise masks, from their reconstructed keys
        for u in survivors:
            m = prg(pair_seed(run_seed, rnd, group, u, v), n)
            total = sub(total, m) if u < v else add(total, m)
    return Outcome(decode(total), survivors, dropped, uploads if keep_masked else {})


def traffic(n_members: int, n_survivors: int, elements: int) -> tuple[int, int]:
    """Extra ``(up, down)`` bytes of one surviving client for one round of the protocol, on top
    of its plain float32 upload of ``elements - 1`` values (the last element is its weight):
    key adverts and their broadcast, encrypted shares both ways, the masked upload in 8-byte ring
    elements, the survivor list and the unmasking shares."""
    others = n_members - 1
    up = (
        2 * PUBLIC_KEY_BYTES
        + others * SHARE_BYTES
        + elements * ELEMENT_BYTES
        - (elements - 1) * 4
        + (n_survivors - 1 + (n_members - n_survivors)) * UNMASK_SHARE_BYTES
    )
    down = n_members * 2 * PUBLIC_KEY_BYTES + others * SHARE_BYTES + n_members * ID_BYTES
    return up, down


def dropout_traffic(n_members: int) -> tuple[int, int]:
    """Extra ``(up, down)`` bytes of a client that dropped out after sharing its keys."""
    others = n_members - 1
    return (
        2 * PUBLIC_KEY_BYTES + others * SHARE_BYTES,
        n_members * 2 * PUBLIC_KEY_BYTES + others * SHARE_BYTES,
    )


def client_ops(n_members: int, elements: int) -> float:
    """Operations a client spends on the protocol: one key agreement and one mask expansion per
    other member, plus its self mask."""
    return (n_members - 1) * KEY_AGREEMENT_OPS + n_members * elements * PRG_OPS_PER_ELEMENT
