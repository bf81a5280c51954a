"""``rollout campaign report``: one page for a whole rollout, from its audit log and records."""
