"""The shared "paused until" of each provider limit in Redis (STORYGEN_LIMITS_REDIS_URL): one
key per limit that expires with the pause; a later 429 only moves it forward."""

from __future__ import annotations

import time

from redis import Redis

# Set the pause only if it ends later than the one stored (atomic in Redis).
_EXTEND = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


class RedisPauses:
    def __init__(self, client: Redis):
        self.client = client
        self.extend = client.register_script(_EXTEND)

    def paused_until(self, name: str) -> float:
        value = self.client.get(f"storygen:pause:{name}")
        return float(value) if value else 0.0

    def pause(self, name: str, seconds: float) -> None:
        until = time.time() + seconds
        self.extend(keys=[f"storygen:pause:{name}"], args=[until, max(1, int(seconds * 1000))])
