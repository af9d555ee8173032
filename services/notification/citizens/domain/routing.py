"""The citizen's channel order and the fallback from one channel to the next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SMS, EMAIL, INBOX = "sms", "email", "inbox"
CHANNELS = (SMS, EMAIL, INBOX)
DEFAULT_ORDER = (SMS, EMAIL, INBOX)


@dataclass(frozen=True)
class Hop:
    """One channel of a message's route, with the address it goes to ('' for the inbox)."""

    channel: str
    address: str


def route(order: Sequence[str], *, phone: str | None, email: str | None) -> list[Hop]:
    """The channels a message tries, in the citizen's order, skipping those without an address.

    The portal inbox needs no address, so a citizen who gave neither phone nor e-mail (a counter
    dossier, say) still gets every message there; it is added last when the order omits it and no
    other channel is reachable.
    """
    addresses = {SMS: phone or "", EMAIL: email or "", INBOX: ""}
    hops: list[Hop] = []
    for channel in dict.fromkeys(order):  # keep the order, drop repeats
        if channel not in addresses or (channel != INBOX and not addresses[channel]):
            continue
        hops.append(Hop(channel, addresses[channel]))
    return hops or [Hop(INBOX, "")]


def next_hop(hops: Sequence[Hop], current: str) -> Hop | None:
    """The channel to fall back to after `current` failed for good, or None at the end."""
    channels = [hop.channel for hop in hops]
    if current not in channels:
        return None
    index = channels.index(current) + 1
    return hops[index] if index < len(hops) else None
