"""Every setting, read from the environment (prefix STORYGEN_) or a .env file; see .env.example."""

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

_ENV_FILE = ".env"


class ModelPrice(BaseModel):
    """USD prices of one model: tokens for chat, per image or per megapixel for images."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    per_image: float = Field(0.0, ge=0)
    per_megapixel: float = Field(0.0, ge=0)


# Published list prices (USD) at the time of writing; override with STORYGEN_MODEL_PRICES.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(input_per_mtok=0.15, output_per_mtok=0.60),
    "gpt-4.1-mini": ModelPrice(input_per_mtok=0.40, output_per_mtok=1.60),
    "meta-llama/Llama-3.3-70B-Instruct-Turbo": ModelPrice(
        input_per_mtok=0.88, output_per_mtok=0.88
    ),
    "black-forest-labs/FLUX.1-schnell": ModelPrice(per_megapixel=0.0027),
    # The reference-taking models (third-party price lists, 2026; unverified per megapixel).
    "black-forest-labs/FLUX.1-kontext-pro": ModelPrice(per_megapixel=0.04),
    "black-forest-labs/FLUX.1-kontext-max": ModelPrice(per_megapixel=0.08),
    "black-forest-labs/FLUX.1-kontext-dev": ModelPrice(per_megapixel=0.025),
    "black-forest-labs/FLUX.2-pro": ModelPrice(per_megapixel=0.03),
    "black-forest-labs/FLUX.2-flex": ModelPrice(per_megapixel=0.03),
    "black-forest-labs/FLUX.2-dev": ModelPrice(per_megapixel=0.015),
    "dall-e-3": ModelPrice(per_image=0.04),
    # GPT Image bills tokens; per picture: medium quality at 1536x1024 (gpt-image-1 $0.063,
    # -mini $0.0125, -1.5 $0.05) plus, on the edits endpoint, the sheet as input image tokens
    # (~$0.01, ~$0.002, ~$0.008). An estimate for the budget: override with real figures.
    "gpt-image-1": ModelPrice(per_image=0.073),
    "gpt-image-1-mini": ModelPrice(per_image=0.015),
    "gpt-image-1.5": ModelPrice(per_image=0.058),
}


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value is never echoed (a database URL holds a password).
    model_config = SettingsConfigDict(
        env_prefix="STORYGEN_",
        env_file=_ENV_FILE,
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    home: Path = Field(Path(".storygen"), description="Embedded Postgres, objects, Dagster home")
    database_url: str | None = Field(None, description="Postgres URL; unset = embedded server")
    object_store_url: str | None = Field(None, description="Folder or s3://bucket/prefix")
    s3_endpoint_url: str | None = None
    image_width: int = Field(1024, ge=64, le=2048)
    image_height: int = Field(768, ge=64, le=2048)
    image_prompt_max_chars: int = Field(900, ge=80, le=4000)
    max_concurrency: int = Field(16, ge=1, le=256)
    llm_provider: Literal["offline", "openai"] = "offline"
    llm_base_url: str = Field("https://api.openai.com/v1", description="OpenAI-compatible /v1")
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_max_tokens: int = Field(4096, ge=64, le=65536)
    llm_temperature: float = Field(0.7, ge=0, le=2)
    image_provider: Literal["offline", "together", "openai"] = "offline"
    image_base_url: str | None = Field(None, description="Unset = the provider's public API")
    image_api_key: SecretStr | None = None
    image_model: str = "black-forest-labs/FLUX.1-schnell"
    image_steps: int = Field(4, ge=1, le=100)
    image_response_format: Literal["b64_json", "url"] = "b64_json"
    image_reference: Literal["auto", "none", "image_url", "reference_images", "image_edit"] = Field(
        "auto", description="How scenes carry the character sheet (providers/reference.py)"
    )
    sheet_max_bytes: int = Field(
        10_000_000, ge=1000, le=100_000_000, description="Largest uploaded character sheet"
    )
    vision_model: str = Field(
        "offline",
        min_length=1,
        description="Picture review: offline (checks on the PNG), none, or a vision chat model",
    )
    vision_base_url: str | None = Field(None, description="Unset = STORYGEN_LLM_BASE_URL")
    vision_api_key: SecretStr | None = Field(None, description="Unset = STORYGEN_LLM_API_KEY")
    vision_rpm: int = Field(60, ge=1, le=100_000, description="Review requests per minute")
    vision_max_tokens: int = Field(1024, ge=64, le=65536)
    max_redraws: int = Field(1, ge=0, le=5, description="Redraws of a picture the review fails")
    llm_rpm: int = Field(60, ge=1, le=100_000, description="LLM requests per minute")
    image_rpm: int = Field(60, ge=1, le=100_000, description="Image requests per minute")
    llm_tpm: int = Field(
        0,
        ge=0,
        le=1_000_000_000,
        description="LLM tokens per minute (prompt + max_tokens, estimated before each call); "
        "0: not limited",
    )
    limits: Literal["shared", "process"] = Field(
        "shared", description="shared: RPM across every process (Postgres or Redis); process"
    )
    limits_redis_url: str | None = Field(None, description="Shared limits in Redis, not Postgres")
    rate_window_s: float = Field(60.0, ge=1, le=3600, description="Window of the RPM limits")
    max_cost_per_story_usd: float = Field(1.0, ge=0)
    max_cost_per_day_usd: float | None = Field(
        None, ge=0, description="All workers' spend per UTC day; unset = no daily cap"
    )
    model_prices: dict[str, ModelPrice] = Field(default_factory=dict, description="JSON")
    http_connect_timeout_s: float = Field(10.0, gt=0)
    llm_read_timeout_s: float = Field(120.0, gt=0)
    image_read_timeout_s: float = Field(120.0, gt=0)
    retry_attempts: int = Field(5, ge=1, le=20, description="HTTP attempts per call, in total")
    retry_backoff_s: float = Field(1.0, ge=0, description="First backoff; doubles, plus jitter")
    retry_backoff_max_s: float = Field(30.0, ge=0)
    retry_after_max_s: float = Field(60.0, ge=0, description="Cap on a server's Retry-After")
    offline_latency_s: float = Field(0.0, ge=0, le=60, description="Simulated call latency")
    nightly_cron: str = Field("0 2 * * *", description="nightly_stories schedule (cron)")
    nightly_timezone: str = Field("UTC", description="IANA timezone of the nightly schedule")
    request_max_attempts: int = Field(3, ge=1, le=50, description="Launches per request")
    request_sensor_interval_s: int = Field(15, ge=5, le=3600)
    request_batch_size: int = Field(100, ge=1, le=5000, description="Requests per sensor tick")
    stories_per_run: int = Field(
        50, ge=1, le=1000, description="Most stories in one run: backfills, nightly, sensor"
    )
    # Recovery after a hard kill (docs/operations.md): run monitoring and the request reconciler.
    run_monitoring_poll_s: int = Field(30, ge=1, le=3600)
    # In dev the restart sweep ends a dead predecessor's STARTING runs at once; this is for a
    # worker that never comes up during a session. 180 s (Dagster's default) failed healthy
    # runs here: 4 workers booting at once on 2 loaded cores took over 3 minutes, and each
    # false timeout costs the request one of its attempts.
    run_start_timeout_s: int = Field(600, ge=1)
    run_cancel_timeout_s: int = Field(180, ge=1)
    run_free_slots_after_s: int = Field(60, ge=1, description="Free a dead run's pool slots")
    request_max_runtime_s: int = Field(3600, ge=1, description="A request run's longest life")
    request_launch_grace_s: int = Field(300, ge=1, description="A launch's time to show a run")
    db_outage_grace_s: float = Field(15.0, ge=0, description="How long an outage is waited out")
    content_blocklist: list[str] | None = Field(
        None, description="JSON list of words that hold a story; unset = the built-in list"
    )
    moderation_url: str | None = Field(
        None, description="OpenAI-compatible /v1 base for POST /moderations; unset = word list only"
    )
    moderation_api_key: SecretStr | None = Field(None, description="Unset = STORYGEN_LLM_API_KEY")
    moderation_model: str = "omni-moderation-latest"
    review: Literal["none", "story"] = Field(
        "none", description="story: every story waits for a person's approval before pictures"
    )
    review_token: SecretStr | None = Field(
        None, description="Reviewer token the review page requires for any decision"
    )
    print_trim_in: float = Field(8.5, ge=4, le=14, description="Square trim of the PDF, inches")
    print_bleed_in: float = Field(0.125, ge=0, le=0.5, description="Bleed on every side, inches")
    print_min_dpi: int = Field(300, ge=1, le=1200, description="print_preflight's picture dpi")
    print_font: Path | None = Field(None, description="A .ttf for the books; unset = Kurinto Sans")
    book_language: str = Field(
        "en",
        pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$",
        description="BCP 47 language of the HTML book, the PDF and the EPUB",
    )
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        """Refused here, naming the setting: a URL SQLAlchemy cannot parse (a password with an
        unescaped @ : / % in it) or that is not Postgres failed later with a traceback."""
        if not url:
            return None
        from sqlalchemy.engine import make_url

        try:
            driver = make_url(url).drivername
        except Exception:
            raise ValueError(
                "not a URL like postgresql://user:password@host:5432/db (in the password write"
                " @ as %40, : as %3A, / as %2F, % as %25)"
            ) from None
        if driver.partition("+")[0] != "postgresql":
            raise ValueError(f"a postgresql:// URL is needed, not {driver}://")
        return url

    def price(self, model: str) -> ModelPrice | None:
        return self.model_prices.get(model) or DEFAULT_PRICES.get(model)

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def objects_url(self) -> str:
        return self.object_store_url or str(self.home_dir / "objects")

    @property
    def dagster_home(self) -> Path:
        return self.home_dir / "dagster"


# The last settings read, keyed by what they were read from: see get_settings.
_last: dict[tuple, Settings] = {}


def _sources() -> tuple:
    """What a Settings() reads: the STORYGEN_ variables (in any case, as pydantic-settings
    matches them) and the .env file of the working directory (its identity and stamp)."""
    try:
        found = os.stat(_ENV_FILE)
        env_file: tuple | None = (found.st_ino, found.st_size, found.st_mtime_ns)
    except OSError:
        env_file = None
    return (
        os.getcwd(),
        env_file,
        tuple(sorted((k, v) for k, v in os.environ.items() if k[:9].upper() == "STORYGEN_")),
    )


def get_settings() -> Settings:
    """The settings as the environment and .env file are now. Reading them costs ~5 ms of CPU,
    and a CLI run asked ~20 times before its first provider call (the resources ask on each
    use): the last read is reused while the variables and the file are unchanged. Settings are
    frozen, so one object is shared by its callers and threads."""
    sources = _sources()
    settings = _last.get(sources)
    if settings is None:
        settings = Settings()
        _last.clear()  # only the latest: tests change the environment often
        _last[sources] = settings
    return settings


def settings_error(exc: ValidationError | SettingsError) -> str:
    """One line naming each refused variable, never its value."""
    if isinstance(exc, SettingsError):
        return f"a setting could not be read: {exc}"
    problems = [
        f"STORYGEN_{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
        for err in exc.errors()
    ]
    return "invalid settings: " + "; ".join(problems)
