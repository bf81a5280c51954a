"""Load for the toy target: a few users hitting /work with short pauses."""

from __future__ import annotations

from locust import FastHttpUser, between, task


class ToyUser(FastHttpUser):
    wait_time = between(0.005, 0.015)

    @task
    def work(self) -> None:
        self.client.get("/work")
