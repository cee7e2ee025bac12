"""Every setting, read from the environment (prefix STORYGEN_) or a .env file; see .env.example."""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STORYGEN_", env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Field(Path(".storygen"), description="Embedded Postgres, objects, Dagster home")
    database_url: str | None = Field(None, description="Postgres URL; unset = embedded server")
    object_store_url: str | None = Field(None, description="Folder or s3://bucket/prefix")
    s3_endpoint_url: str | None = None
    image_width: int = Field(1024, ge=64, le=2048)
    image_height: int = Field(768, ge=64, le=2048)
    image_prompt_max_chars: int = Field(900, ge=80, le=4000)
    max_concurrency: int = Field(16, ge=1, le=256)
    llm_provider: Literal["offline"] = "offline"
    image_provider: Literal["offline"] = "offline"
    offline_latency_s: float = Field(0.0, ge=0, le=60, description="Simulated call latency")
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def objects_url(self) -> str:
        return self.object_store_url or str(self.home_dir / "objects")

    @property
    def dagster_home(self) -> Path:
        return self.home_dir / "dagster"


def get_settings() -> Settings:
    return Settings()
