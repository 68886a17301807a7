"""Loading YAML config files into pydantic models with errors a person can act on.

Every service has one typed config model; ``load_config(path, Model)`` returns it
or raises ``ConfigError`` naming the file, the key and what was expected. The models
several services share live here too (``Strict``, ``Segment``, ``MetricsEndpoint``).
Values of the form ``${NAME}`` or ``${NAME:-default}`` are taken from the
environment, so secrets need not live in the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from shopfloor.contract import SEGMENT_RE
from shopfloor.errors import ShopfloorError

M = TypeVar("M", bound=BaseModel)

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ShopfloorError):
    """A config file that cannot be used; the message names file, key and expectation."""


# A topic segment / asset id in a config: letters, digits, '-', '_', '.' (contract.SEGMENT_RE).
Segment = Annotated[str, Field(pattern=SEGMENT_RE.pattern)]


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricsEndpoint(Strict):
    """A Prometheus ``/metrics`` endpoint (``metrics:`` of the edge and gateway configs)."""

    host: str = Field("127.0.0.1", description="listen address; 0.0.0.0 for a scraper elsewhere")
    port: int = Field(9464, ge=0, le=65535, description="0: any free port")


def _expand_env(node: Any, path: Path) -> Any:
    if isinstance(node, dict):
        return {k: _expand_env(v, path) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, path) for v in node]
    if isinstance(node, str) and "${" in node:
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{path}: environment variable {name} is not set")
        return _ENV_RE.sub(sub, node)
    return node


def format_validation_error(path: Path | str, exc: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the sample config)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def parse_config(data: Any, model: type[M], source: Path | str = "<config>") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def load_yaml(path: Path | str) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return _expand_env(data, path)


def load_config(path: Path | str, model: type[M]) -> M:
    return parse_config(load_yaml(path), model, path)


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
