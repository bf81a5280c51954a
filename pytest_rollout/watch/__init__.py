"""``rollout watch``: re-evaluate a phase's gates every interval until it decides (docs/watch.md)."""
