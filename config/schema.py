"""The mapping file's format, as pydantic models (see docs/mapping-file.md for the user's view)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from domain.filters import LIST_OPS, VALUELESS_OPS, Op

Scalar = None | bool | int | float | str
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SystemModel(Strict):
    connector: Literal["sql"] = "sql"
    url: Name
    schema_: Name | None = Field(default=None, alias="schema")


class ConditionModel(Strict):
    field: Name
    op: Op = Op.EQ
    value: Scalar | list[Scalar] = None

    @model_validator(mode="after")
    def _shape(self) -> ConditionModel:
        if self.op in LIST_OPS and not isinstance(self.value, list):
            raise ValueError(f"operator {self.op.value} needs a list of values")
        if self.op not in LIST_OPS and isinstance(self.value, list):
            raise ValueError(f"operator {self.op.value} takes one value, not a list (use in / not_in)")
        if self.op in VALUELESS_OPS and self.value is not None:
            raise ValueError(f"operator {self.op.value} takes no value")
        return self


class TemplateModel(Strict):
    values: dict[Name, Scalar]
    when: list[ConditionModel] = []
    priority: int = 0


class SideModel(Strict):
    table: Name
    key: Name
    version: Name | None = None
    filter: list[ConditionModel] = []
    defaults: list[TemplateModel] = []
    new_keys: Literal["database", "uuid"] = "database"
    key_prefix: str = ""


class MatchModel(Strict):
    priority: int = Field(default=1, ge=0)
    case_sensitive: StrictBool = False


class ReplaceArgs(Strict):
    old: str
    new: str = ""


class RegexArgs(Strict):
    pattern: str
    replacement: str = ""


class SubstringArgs(Strict):
    start: int = Field(default=0, ge=0)
    length: int | None = Field(default=None, ge=0)


class DateArgs(Strict):
    to: str
    from_: str | None = Field(default=None, alias="from")


class ValueMapArgs(Strict):
    values: dict[bool | int | float | str, Scalar]  # YAML keys keep their type: true, 1 and '1' differ
    unmapped: Literal["error", "keep", "null"] = "error"


SIMPLE_TRANSFORMS = ("upper", "lower", "title", "trim", "to_text", "to_number")


class TransformModel(Strict):
    """One step: a bare name (`upper`) or a one-key mapping with its argument (`prefix: "C-"`)."""

    upper: Literal[True] | None = None
    lower: Literal[True] | None = None
    title: Literal[True] | None = None
    trim: Literal[True] | None = None
    to_text: Literal[True] | None = None
    to_number: Literal[True] | None = None
    prefix: str | None = None
    suffix: str | None = None
    replace: ReplaceArgs | None = None
    regex_replace: RegexArgs | None = None
    substring: SubstringArgs | None = None
    round: int | None = None
    date_format: DateArgs | None = None
    value_map: ValueMapArgs | None = None
    if_blank: Scalar = None

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in SIMPLE_TRANSFORMS:
                raise ValueError(
                    f"unknown transform {data!r} (bare names: {', '.join(SIMPLE_TRANSFORMS)}; "
                    "others take an argument, e.g. {prefix: 'C-'})"
                )
            return {data: True}
        if isinstance(data, dict) and len(data) != 1:
            raise ValueError("a transform is one key with its argument, e.g. {replace: {old: '-', new: ''}}")
        return data

    @property
    def kind(self) -> str:
        (name,) = self.model_fields_set
        return name


class FieldModel(Strict):
    """A field mapping: the keys other than these name the column on each system."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: Name | None = None
    direction: Name | None = None
    enabled: StrictBool = True
    constant: Scalar = None
    transforms: dict[Name, list[TransformModel]] = {}
    lookup: Name | None = None
    if_uncoupled: Literal["error", "blank"] = "error"
    match: StrictBool | MatchModel = False

    @property
    def columns(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @field_validator("transforms", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value


class MappingModel(Strict):
    model_config = ConfigDict(extra="allow", frozen=True)

    direction: Name = "both"
    sync_only_coupled: StrictBool = True
    depends_on: list[Name] = []
    conflict: Name = "fail"
    deletion: Literal["fail", "uncouple", "restore", "propagate"] = "fail"
    skip_after: int = Field(default=2, ge=1, le=1000)
    fields: list[FieldModel] = Field(min_length=1)

    @property
    def side_models(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class HmacModel(Strict):
    header: Name = "X-Tandem-Signature"
    secret: Name
    algorithm: Literal["sha256", "sha512"] = "sha256"


class AuthModel(Strict):
    """One way to prove the sender: an HMAC of the body, or a shared key in a header or query parameter."""

    hmac: HmacModel | None = None
    header: Name | None = None
    query: Name | None = None
    key: Name | None = None

    @model_validator(mode="after")
    def _one_way(self) -> AuthModel:
        ways = [self.hmac is not None, self.header is not None, self.query is not None]
        if sum(ways) != 1:
            raise ValueError("choose one of: hmac, header (with key), query (with key)")
        if (self.header or self.query) and not self.key:
            raise ValueError("a shared key in a header or query parameter needs `key`")
        return self


class TableModel(Strict):
    table: Name
    key_column: Name | None = None  # the sender names records by this column, not by the table's key


class WebhookModel(Strict):
    kind: Literal["tandem", "dataverse", "business_central"]
    system: Name | None = None
    auth: AuthModel | None = None
    client_state: Name | None = None
    tables: dict[Name, Name | TableModel] = {}
    ignore_users: list[Name] = []
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)

    @model_validator(mode="after")
    def _complete(self) -> WebhookModel:
        if self.kind == "business_central" and not self.client_state and self.auth is None:
            raise ValueError(
                "a business_central source needs `client_state` (the secret BC repeats) or `auth`"
            )
        if self.kind != "business_central" and self.auth is None:
            raise ValueError(f"a {self.kind} source needs `auth`")
        if self.kind != "tandem" and not self.system:
            raise ValueError(f"a {self.kind} source needs `system`: which system its notifications are about")
        return self


class FileModel(Strict):
    version: Literal[1] = 1
    systems: dict[Name, SystemModel] = Field(min_length=2)
    mappings: dict[Name, MappingModel] = Field(min_length=1)
    webhooks: dict[Name, WebhookModel] = {}
