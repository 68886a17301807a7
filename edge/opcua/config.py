"""The OPC UA device config: ``OpcUaDevice`` (endpoint, mode, sampling, security,
identity), its tags (``OpcUaTag``: node id or browse path), ``DataChangeFilter`` and
``OpcUaSecurity``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shopfloor.config import Strict

from ..device import DeviceBase, TagBase


class DataChangeFilter(Strict):
    """OPC UA data-change filter of a monitored item."""

    trigger: Literal["Status", "StatusValue", "StatusValueTimestamp"] = "StatusValue"
    deadband_type: Literal["none", "absolute", "percent"] = "none"
    deadband_value: float = Field(0.0, ge=0, description="absolute units, or % of EURange")


class OpcUaTag(TagBase):
    node: str | None = Field(None, description='node id: "ns=2;s=Name", "ns=2;i=1005", '
                                               '"nsu=urn:...;s=Name"')
    browse_path: str | None = Field(
        None, description='from Objects, e.g. "2:cnc-01/2:State" (namespace index:name)')
    filter: DataChangeFilter | None = Field(None, description="overrides the device's")

    @field_validator("node")
    @classmethod
    def _node_id(cls, v: str | None) -> str | None:
        from asyncua import ua

        if v is None:
            return v
        try:
            ua.NodeId.from_string(v)
        except Exception:
            raise ValueError(f"{v!r} is not an OPC UA node id like 'ns=2;s=Name'") from None
        return v

    @field_validator("browse_path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not all(p.strip() for p in v.split("/")):
            raise ValueError(f"browse path {v!r} has an empty element")
        return v

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaTag:
        if (self.node is None) == (self.browse_path is None):
            raise ValueError("give exactly one of 'node' and 'browse_path'")
        return self

    @property
    def address(self) -> str:
        return self.node or f"path:{self.browse_path}"


SecurityPolicy = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep",
                         "Aes256_Sha256_RsaPss"]


class OpcUaSecurity(Strict):
    """Secure channel and client application certificate (``shopfloor edge cert``)."""

    policy: SecurityPolicy = "Basic256Sha256"
    mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: Path = Field(description="the agent's certificate (DER or PEM)")
    private_key: Path = Field(description="the agent's private key (PEM)")
    private_key_password: SecretStr | None = None
    server_certificate: Path | None = Field(
        None, description="pin the server's certificate; else taken from its endpoints")
    trust_dir: Path | None = Field(
        None, description="directory of trusted server certificates; the server's must be "
                          "in it (or signed by one in it)")
    application_uri: str = Field("urn:shopfloor:edge",
                                 description="must match the certificate's URI")

    @model_validator(mode="after")
    def _policy(self) -> OpcUaSecurity:
        if self.policy == "None":
            raise ValueError("policy 'None': leave out 'security' for an insecure channel")
        return self


class OpcUaDevice(DeviceBase):
    protocol: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="opc.tcp://host:port[/path]")
    mode: Literal["subscribe", "poll"] = Field(
        "subscribe", description="data-change subscription, or reads every poll_s")
    poll_s: float = Field(1.0, gt=0, description="mode poll: read period")
    sampling_interval_ms: float = Field(100, ge=0)
    queue_size: int = Field(100, ge=2, description=">1 so no state transition is coalesced")
    filter: DataChangeFilter | None = Field(None, description="data-change filter of every tag")
    max_nodes_per_call: int = Field(
        1000, ge=1, description="nodes per Read / CreateMonitoredItems when the server "
                                "does not publish its OperationLimits")
    security: OpcUaSecurity | None = None
    username: str | None = None
    password: SecretStr | None = None
    user_certificate: Path | None = Field(None, description="X.509 user identity (certificate)")
    user_private_key: Path | None = None
    timeout_s: float = Field(4.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    retry_s: float = Field(5.0, gt=0, description="a tag that cannot be resolved or "
                                                  "subscribed is published bad and tried "
                                                  "again this often")
    tags: list[OpcUaTag] = Field(min_length=1)

    @model_validator(mode="after")
    def _identity(self) -> OpcUaDevice:
        if (self.user_certificate is None) != (self.user_private_key is None):
            raise ValueError("user_certificate and user_private_key go together")
        if self.user_certificate is not None and self.username is not None:
            raise ValueError("one identity: username or user_certificate, not both")
        if self.password is not None and self.username is None:
            raise ValueError("password without username")
        return self

    @property
    def where(self) -> str:
        return self.endpoint
