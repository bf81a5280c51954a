"""Which gates of a phase a run covered: a phase GO needs every one of them.

Collected on whichever process collects (the controller when serial, every xdist worker under
``-n``): the phase of every gate before ``-k``/``-m``/``--deselect`` narrowed the run, the gates an
environment waives in rollout.toml, and the gates left out. The session turns this into a
"partial run" HOLD when gates of the decided phase were left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SHOWN = 5  # left-out gates named in the one-line reason; the record lists them all


@dataclass
class Selection:
    phase_of: dict[str, str] = field(default_factory=dict)  # every phase gate collected
    waived: dict[str, str] = field(default_factory=dict)  # node id -> why rollout.toml waives it
    deselected: set[str] = field(default_factory=set)
    named_by_node_id: bool = False  # the command line named single gates (path::name)

    def to_json(self) -> dict[str, Any]:
        return {
            "phase_of": self.phase_of,
            "waived": self.waived,
            "deselected": sorted(self.deselected),
        }

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add what an xdist worker saw (every worker collects the same items)."""
        self.phase_of.update(data.get("phase_of", {}))
        self.waived.update(data.get("waived", {}))
        self.deselected.update(data.get("deselected", ()))

    def partial(self, phases: Sequence[str], ran: Iterable[str]) -> dict[str, Any] | None:
        """What a partial run of ``phases`` left out, or None when it covered them all."""
        wanted = set(phases)
        of_phase = sorted(
            n for n, p in self.phase_of.items() if p in wanted and n not in self.waived
        )
        left_out = sorted(n for n in self.deselected if n in of_phase)
        ran_of_phase = sorted(set(ran) & set(of_phase))
        if not left_out and not self.named_by_node_id:
            return None
        return {"ran": len(ran_of_phase), "of": len(of_phase), "left_out": left_out}


def partial_reason(phase: str, partial: Mapping[str, Any]) -> str:
    """ "partial run: 1 of 9 gates of phase2 ran; a phase GO needs all of them (left out: …)"."""
    left_out = [n.rsplit("::", 1)[-1] for n in partial["left_out"]]
    shown = ", ".join(left_out[:SHOWN]) + (
        f" and {len(left_out) - SHOWN} more" if len(left_out) > SHOWN else ""
    )
    if partial["left_out"]:
        return (
            f"partial run: {partial['ran']} of {partial['of']} gates of {phase} ran; a phase GO "
            f"needs all of them (left out by -k/-m/--deselect: {shown})"
        )
    return (
        f"partial run: gates were named by node id, so {phase} may have more gates than the "
        f"{partial['ran']} that ran; a phase GO needs all of them (run the phase's files or folder)"
    )


def waiver_for(name: str, waived: Mapping[str, str]) -> str | None:
    """The reason an environment waives the gate called ``name`` (keyword match), or None."""
    for keyword, reason in waived.items():
        if keyword in name:
            return f"waived in this environment ({keyword}): {reason}"
    return None
