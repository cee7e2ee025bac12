"""The loopback fake provider (tests/fakes/provider_server.py) in a separate process, so its
Pillow painting does not share the benchmark's GIL; and the STORYGEN_* variables that point
the real HTTP providers (OpenAI-compatible chat, Together images) at it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-bench-0123456789abcdef"
CHAT_MODEL, IMAGE_MODEL = "bench-chat", "bench-flux"
# Tiny prices so the per-story budget check runs as in production and never refuses a call.
PRICES = {
    CHAT_MODEL: {"input_per_mtok": 0.01, "output_per_mtok": 0.01},
    IMAGE_MODEL: {"per_megapixel": 0.0001},
}


class FakeServerProcess:
    """`python -m tests.fakes.provider_server` as a child: URL read from its first line, stopped
    by closing its stdin, request counts read from its last line (`stats`)."""

    def __init__(self, delay_s: float, key: str = KEY):
        self.delay_s, self.key = delay_s, key
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.stats: dict = {}

    def __enter__(self) -> FakeServerProcess:
        self.proc = subprocess.Popen(
            [
                *[sys.executable, "-m", "tests.fakes.provider_server", "--port", "0"],
                *["--delay", str(self.delay_s), "--key", self.key, "--reuse-images"],
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.proc.kill()
            raise RuntimeError(f"fake provider did not start: {line!r}")
        self.url = line
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        try:
            out, _ = self.proc.communicate(input="", timeout=30)
            last = [ln for ln in out.splitlines() if ln.startswith("{")]
            self.stats = json.loads(last[-1]) if last else {}
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def environ(self) -> dict[str, str]:
        return {
            "STORYGEN_LLM_PROVIDER": "openai",
            "STORYGEN_LLM_BASE_URL": self.url,
            "STORYGEN_LLM_API_KEY": self.key,
            "STORYGEN_LLM_MODEL": CHAT_MODEL,
            "STORYGEN_IMAGE_PROVIDER": "together",
            "STORYGEN_IMAGE_BASE_URL": self.url,
            "STORYGEN_IMAGE_API_KEY": self.key,
            "STORYGEN_IMAGE_MODEL": IMAGE_MODEL,
            # The fake serves one picture for every prompt (--reuse-images): the picture review
            # would rightly reject it and pay for redraws the bench does not measure.
            "STORYGEN_VISION_MODEL": "none",
            "STORYGEN_LLM_RPM": "100000",
            "STORYGEN_IMAGE_RPM": "100000",
            "STORYGEN_MODEL_PRICES": json.dumps(PRICES),
        }
